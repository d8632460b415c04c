//! A loaded program: the validated manifest, every file's bytes, compiled prompts and content
//! hashes, as one immutable snapshot of the directory.
//!
//! [`Program::load`] reports *every* problem it can find in one pass (a meta agent fixing errors
//! one per round trip wastes its budget), each pointing at `file:line:col`.
//!
//! # Manifest (`hyperagent.toml`, format 1)
//!
//! ```toml
//! format = 1                         # required; other versions are refused
//!
//! [program]
//! name = "seed"                      # required, non-empty
//! description = "..."                # optional
//!
//! [budgets]                          # optional; each field optional. Requests only: the run
//! max_steps = 40                     # caps them (BudgetRequest::cap). Integers >= 1.
//!                                    # steps: environment actions (act, answer, tool)
//! max_calls = 120                    # skill, delegate and llm calls
//! max_tokens = 20000
//! max_wall_secs = 120.0              # positive, finite
//!
//! [hyper]                            # the coordinator
//! prompt = "hyper/prompt.md"
//! script = "hyper/main.py"
//! model = "task"                     # optional alias: task | meta | judge (default task)
//! agents = ["web", "qa"]             # task agents it may delegate to (default [])
//!
//! [agents.web]                       # a task agent; name: letter then [A-Za-z0-9_-], <= 64
//! description = "Operates a web page to reach a goal"
//! prompt = "tasks/web/prompt.md"
//! script = "tasks/web/policy.py"
//! model = "task"                     # optional (default task)
//! skills = ["click", "type_text", "answer"]   # default []
//! agents = []                        # sub-delegation (default []); cycles are errors
//! max_steps = 20                     # optional per-agent cap on actions, its skills' included (>= 1)
//!
//! [skills.click]                     # a skill agent
//! description = "Click an element by ref"
//! prompt = "skills/click/prompt.md"  # optional if script is given
//! script = "skills/click/skill.py"   # optional if prompt is given; at least one
//! model = "task"                     # optional (default task)
//!
//! [meta]
//! prompt = "meta/prompt.md"
//! script = "meta/improve.py"
//! select = "meta/select.py"          # optional parent-selection script
//! model = "meta"                     # optional (default meta)
//! ```
//!
//! Unknown keys anywhere are errors. Paths are program-relative (no `/` prefix, no `..`) and
//! must name existing regular files. Every prompt must compile as a minijinja template (prompts
//! may include each other by path); every script must pass the [`ScriptChecker`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use crate::budget::BudgetRequest;
use crate::error::{Location, ProgramError, ProgramErrorKind};
use crate::files::{self, FsError};
use crate::hash::{self, ContentHash};
use crate::manifest::{self, FORMAT_VERSION, MANIFEST_FILE, RawAgent, RawManifest};
use crate::path::RelPath;
use crate::script::ScriptChecker;
use crate::template::Prompts;

/// Which model an agent uses, by role; the run binds each alias to a real model, so a program
/// can never pick (or pay for) a model the run did not offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ModelAlias {
    /// The model that acts in episodes.
    Task,
    /// The model that improves programs.
    Meta,
    /// The model that grades free-form answers.
    Judge,
}

impl ModelAlias {
    /// Every alias, in the order messages list them.
    pub const ALL: [ModelAlias; 3] = [ModelAlias::Task, ModelAlias::Meta, ModelAlias::Judge];

    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelAlias::Task => "task",
            ModelAlias::Meta => "meta",
            ModelAlias::Judge => "judge",
        }
    }

    /// Parses the manifest spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }
}

impl fmt::Display for ModelAlias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The validated manifest.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Manifest {
    /// Manifest format version (always [`FORMAT_VERSION`] once loaded).
    pub format: u32,
    /// Name and description.
    pub program: ProgramInfo,
    /// Requested per-episode budgets (capped by the run).
    pub budgets: BudgetRequest,
    /// The coordinator.
    pub hyper: HyperSpec,
    /// Task agents, in declaration order.
    pub agents: Vec<AgentSpec>,
    /// Skill agents, in declaration order.
    pub skills: Vec<SkillSpec>,
    /// The meta agent.
    pub meta: MetaSpec,
    /// External tools the program asks for; the run decides which it grants.
    pub tools: ToolRequests,
}

/// `[tools]`: what the program asks of the run's external tools.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ToolRequests {
    /// MCP tools as `server/tool`, or `server/*` for every tool the run
    /// grants from that server.
    pub mcp: Vec<String>,
}

/// `[program]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProgramInfo {
    /// Short name.
    pub name: String,
    /// Free text.
    pub description: String,
}

/// `[hyper]`: the coordinator that plans and delegates.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HyperSpec {
    /// Prompt template.
    pub prompt: RelPath,
    /// Entry script.
    pub script: RelPath,
    /// Model alias (default `task`).
    pub model: ModelAlias,
    /// Task agents it may delegate to.
    pub agents: Vec<String>,
}

/// `[agents.<name>]`: a task agent turning a goal into skill calls.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentSpec {
    /// The name `delegate` uses.
    pub name: String,
    /// What it does, shown to whoever delegates.
    pub description: String,
    /// Prompt template.
    pub prompt: RelPath,
    /// Policy script.
    pub script: RelPath,
    /// Model alias (default `task`).
    pub model: ModelAlias,
    /// Skills it may call.
    pub skills: Vec<String>,
    /// Task agents it may delegate to (acyclic).
    pub agents: Vec<String>,
    /// Its own step cap, which can only lower the episode's.
    pub max_steps: Option<u32>,
}

/// `[skills.<name>]`: one granular action.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkillSpec {
    /// The name `skill` uses.
    pub name: String,
    /// What it does, shown to task agents.
    pub description: String,
    /// Prompt template, for skills that ask a model.
    pub prompt: Option<RelPath>,
    /// Script, for skills that act (and verify) in code. At least one of the two is present.
    pub script: Option<RelPath>,
    /// Model alias (default `task`).
    pub model: ModelAlias,
}

/// `[meta]`: the agent that edits the child program.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetaSpec {
    /// Prompt template.
    pub prompt: RelPath,
    /// Improvement script.
    pub script: RelPath,
    /// Optional parent-selection script.
    pub select: Option<RelPath>,
    /// Model alias (default `meta`).
    pub model: ModelAlias,
}

impl Manifest {
    /// Every prompt file the manifest names.
    pub fn prompt_files(&self) -> BTreeSet<&RelPath> {
        let mut out = BTreeSet::from([&self.hyper.prompt, &self.meta.prompt]);
        out.extend(self.agents.iter().map(|a| &a.prompt));
        out.extend(self.skills.iter().filter_map(|s| s.prompt.as_ref()));
        out
    }

    /// Every script file the manifest names (including `meta.select`).
    pub fn script_files(&self) -> BTreeSet<&RelPath> {
        let mut out = BTreeSet::from([&self.hyper.script, &self.meta.script]);
        out.extend(self.meta.select.as_ref());
        out.extend(self.agents.iter().map(|a| &a.script));
        out.extend(self.skills.iter().filter_map(|s| s.script.as_ref()));
        out
    }
}

/// A loaded, validated program: an immutable snapshot of its directory.
#[derive(Clone)]
pub struct Program {
    root: PathBuf,
    manifest: Manifest,
    files: BTreeMap<RelPath, Vec<u8>>,
    prompts: Prompts,
    content_hash: ContentHash,
    episode_hash: ContentHash,
}

impl fmt::Debug for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Program")
            .field("root", &self.root)
            .field("name", &self.manifest.program.name)
            .field("content_hash", &self.content_hash)
            .finish_non_exhaustive()
    }
}

impl Program {
    /// Loads and validates the program in `dir`, checking scripts with `checker`.
    ///
    /// On failure returns every problem found, sorted (manifest first, then by file and line).
    pub fn load(
        dir: impl AsRef<Path>,
        checker: &dyn ScriptChecker,
    ) -> Result<Self, Vec<ProgramError>> {
        load(dir.as_ref(), checker)
    }

    /// The directory it was loaded from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The validated manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// `[program]`.
    pub fn info(&self) -> &ProgramInfo {
        &self.manifest.program
    }

    /// The requested budgets; cap them with [`BudgetRequest::cap`].
    pub fn budgets(&self) -> &BudgetRequest {
        &self.manifest.budgets
    }

    /// The coordinator.
    pub fn hyper(&self) -> &HyperSpec {
        &self.manifest.hyper
    }

    /// Task agents in declaration order.
    pub fn agents(&self) -> &[AgentSpec] {
        &self.manifest.agents
    }

    /// The task agent called `name`.
    pub fn agent(&self, name: &str) -> Option<&AgentSpec> {
        self.manifest.agents.iter().find(|a| a.name == name)
    }

    /// Skills in declaration order.
    pub fn skills(&self) -> &[SkillSpec] {
        &self.manifest.skills
    }

    /// The skill called `name`.
    pub fn skill(&self, name: &str) -> Option<&SkillSpec> {
        self.manifest.skills.iter().find(|s| s.name == name)
    }

    /// The meta agent.
    pub fn meta(&self) -> &MetaSpec {
        &self.manifest.meta
    }

    /// Every regular file, sorted by path.
    pub fn files(&self) -> impl Iterator<Item = &RelPath> {
        self.files.keys()
    }

    /// The bytes of `path` as loaded.
    pub fn file_bytes(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    /// The text of `path` as loaded (`None` if absent or not UTF-8). Every prompt and script
    /// the manifest names is guaranteed to be text.
    pub fn source(&self, path: &str) -> Option<&str> {
        std::str::from_utf8(self.file_bytes(path)?).ok()
    }

    /// The compiled prompt templates.
    pub fn prompts(&self) -> &Prompts {
        &self.prompts
    }

    /// The host path of a program file.
    pub fn host_path(&self, path: &RelPath) -> PathBuf {
        path.to_path(&self.root)
    }

    /// Hash of every file (see [`crate::hash`] for the encoding); the program's identity.
    pub fn content_hash(&self) -> ContentHash {
        self.content_hash
    }

    /// Hash of the files an episode loads (all but `meta/` and `memory/`).
    pub fn episode_hash(&self) -> ContentHash {
        self.episode_hash
    }
}

fn load(root: &Path, checker: &dyn ScriptChecker) -> Result<Program, Vec<ProgramError>> {
    let mut errors = Vec::new();
    let scan = files::scan(root, None);
    let broken: BTreeSet<String> = scan.errors.iter().map(|e| e.path().to_owned()).collect();
    // The scan names the root as the caller gave it; an error is located
    // inside the program, so the root itself is ".".
    let root_name = root.display().to_string();
    errors.extend(scan.errors.iter().map(|e| {
        let file = if e.path() == root_name { "." } else { e.path() };
        ProgramError::new(Location::file(file), ProgramErrorKind::File(fs_problem(e)))
    }));
    let mut contents = BTreeMap::new();
    for file in scan.files {
        match std::fs::read(&file.host) {
            Ok(bytes) => {
                contents.insert(file.rel, bytes);
            }
            Err(e) => errors.push(ProgramError::new(
                Location::file(file.rel.as_str()),
                ProgramErrorKind::File(format!("cannot read: {e}")),
            )),
        }
    }
    let Some(bytes) = contents.get(MANIFEST_FILE) else {
        // A directory that cannot be read has no manifest to report.
        if !broken.contains(MANIFEST_FILE) && !broken.contains(&root_name) {
            errors.push(ProgramError::new(
                Location::file(MANIFEST_FILE),
                ProgramErrorKind::MissingManifest,
            ));
        }
        return Err(finish(errors));
    };
    let Ok(source) = std::str::from_utf8(bytes) else {
        errors.push(ProgramError::new(
            Location::file(MANIFEST_FILE),
            ProgramErrorKind::NotUtf8,
        ));
        return Err(finish(errors));
    };
    let raw = match manifest::parse(source) {
        Ok(raw) => raw,
        Err(e) => {
            errors.push(e);
            return Err(finish(errors));
        }
    };
    let dirs: BTreeSet<RelPath> = scan.dirs.into_iter().collect();
    let mut v = Validator {
        source,
        contents: &contents,
        dirs: &dirs,
        broken: &broken,
        prompt_files: BTreeSet::new(),
        script_files: BTreeSet::new(),
        errors: Vec::new(),
    };
    let manifest = v.manifest(raw);
    let (prompt_files, script_files) = (v.prompt_files, v.script_files);
    errors.extend(v.errors);

    let mut prompt_sources = Vec::new();
    for path in prompt_files {
        if let Some(text) = text_of(&contents, &path, &mut errors) {
            prompt_sources.push((path, text.to_owned()));
        }
    }
    let prompts = Prompts::compile(prompt_sources)
        .map_err(|es| errors.extend(es))
        .ok();
    for path in script_files {
        let Some(text) = text_of(&contents, &path, &mut errors) else {
            continue;
        };
        if let Err(e) = checker.check(path.as_str(), text) {
            errors.push(ProgramError::new(
                Location {
                    file: path.to_string(),
                    line: Some(e.line),
                    column: e.column,
                },
                ProgramErrorKind::ScriptSyntax(e.message),
            ));
        }
    }
    match (manifest, prompts) {
        (Some(manifest), Some(prompts)) if errors.is_empty() => {
            let content_hash = hash::hash_files(contents.iter().map(|(p, b)| (p, b.as_slice())));
            let episode_hash = hash::hash_files(
                contents
                    .iter()
                    .filter(|(p, _)| hash::is_episode_file(p))
                    .map(|(p, b)| (p, b.as_slice())),
            );
            Ok(Program {
                root: root.to_path_buf(),
                manifest,
                files: contents,
                prompts,
                content_hash,
                episode_hash,
            })
        }
        _ => Err(finish(errors)),
    }
}

/// Sorts (manifest first, then by place) and drops duplicates.
fn finish(mut errors: Vec<ProgramError>) -> Vec<ProgramError> {
    errors.sort_by(|a, b| {
        let key = |e: &ProgramError| (e.location.file != MANIFEST_FILE, e.location.clone());
        key(a).cmp(&key(b))
    });
    errors.dedup();
    errors
}

fn text_of<'a>(
    contents: &'a BTreeMap<RelPath, Vec<u8>>,
    path: &RelPath,
    errors: &mut Vec<ProgramError>,
) -> Option<&'a str> {
    let bytes = contents.get(path)?;
    match std::str::from_utf8(bytes) {
        Ok(text) => Some(text),
        Err(_) => {
            errors.push(ProgramError::new(
                Location::file(path.as_str()),
                ProgramErrorKind::NotUtf8,
            ));
            None
        }
    }
}

/// The problem without its path (the error's location already names it).
fn fs_problem(err: &FsError) -> String {
    match err {
        FsError::Symlink { .. } => "is a symbolic link; programs may not contain links".into(),
        FsError::Special { .. } => "is not a regular file or directory".into(),
        FsError::BadName { reason, .. } => format!("unusable file name: {reason}"),
        FsError::NotADirectory { .. } => "is not a directory".into(),
        FsError::AlreadyExists { .. } => "already exists".into(),
        FsError::Io { error, .. } => format!("cannot read: {error}"),
    }
}

#[derive(Clone, Copy)]
enum Role {
    Prompt,
    Script,
    Select,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Prompt => "prompt",
            Role::Script => "script",
            Role::Select => "select script",
        }
    }
}

#[derive(Clone, Copy)]
enum RefKind {
    Skill,
    Agent,
}

/// Runs every manifest check, recording errors and carrying on, so one load reports them all.
struct Validator<'a> {
    source: &'a str,
    contents: &'a BTreeMap<RelPath, Vec<u8>>,
    dirs: &'a BTreeSet<RelPath>,
    broken: &'a BTreeSet<String>,
    prompt_files: BTreeSet<RelPath>,
    script_files: BTreeSet<RelPath>,
    errors: Vec<ProgramError>,
}

impl Validator<'_> {
    fn error(&mut self, offset: usize, kind: ProgramErrorKind) {
        self.errors.push(ProgramError::new(
            Location::at_offset(MANIFEST_FILE, self.source, offset),
            kind,
        ));
    }

    /// Each part is checked in full before the results are combined, so an error in one part
    /// never hides errors in another.
    fn manifest(&mut self, raw: RawManifest) -> Option<Manifest> {
        let mut agents: Vec<_> = raw.agents.into_iter().collect();
        agents.sort_by_key(|(key, _)| key.span().start);
        let mut skills: Vec<_> = raw.skills.into_iter().collect();
        skills.sort_by_key(|(key, _)| key.span().start);
        let agent_names: Vec<String> = agents.iter().map(|(k, _)| k.get_ref().clone()).collect();
        let skill_names: Vec<String> = skills.iter().map(|(k, _)| k.get_ref().clone()).collect();

        let program = self
            .non_empty(&raw.program.name, "program.name")
            .map(|name| ProgramInfo {
                name,
                description: raw.program.description.clone(),
            });
        let budgets = self.budgets(&raw.budgets);
        let hyper = {
            let h = &raw.hyper;
            let prompt = self.path(&h.prompt, Role::Prompt);
            let script = self.path(&h.script, Role::Script);
            let model = self.model(h.model.as_ref(), ModelAlias::Task);
            let delegates = self.references(&h.agents, &agent_names, RefKind::Agent);
            (|| {
                Some(HyperSpec {
                    prompt: prompt?,
                    script: script?,
                    model: model?,
                    agents: delegates?,
                })
            })()
        };
        let agent_specs: Vec<_> = agents
            .iter()
            .map(|(key, a)| self.agent(key, a, &agent_names, &skill_names))
            .collect();
        let skill_specs: Vec<_> = skills
            .iter()
            .map(|(key, s)| {
                let name = self.name(key);
                let description = self.non_empty(&s.description, "description");
                let prompt = s.prompt.as_ref().map(|p| self.path(p, Role::Prompt));
                let script = s.script.as_ref().map(|p| self.path(p, Role::Script));
                let model = self.model(s.model.as_ref(), ModelAlias::Task);
                if s.prompt.is_none() && s.script.is_none() {
                    self.error(
                        key.span().start,
                        ProgramErrorKind::SkillWithoutBody {
                            skill: key.get_ref().clone(),
                        },
                    );
                    return None;
                }
                Some(SkillSpec {
                    name: name?,
                    description: description?,
                    prompt: prompt.map_or(Some(None), |p| p.map(Some))?,
                    script: script.map_or(Some(None), |p| p.map(Some))?,
                    model: model?,
                })
            })
            .collect();
        let meta = {
            let m = &raw.meta;
            let prompt = self.path(&m.prompt, Role::Prompt);
            let script = self.path(&m.script, Role::Script);
            let select = m.select.as_ref().map(|p| self.path(p, Role::Select));
            let model = self.model(m.model.as_ref(), ModelAlias::Meta);
            (|| {
                Some(MetaSpec {
                    prompt: prompt?,
                    script: script?,
                    select: select.map_or(Some(None), |p| p.map(Some))?,
                    model: model?,
                })
            })()
        };
        let tools = self.tool_requests(&raw.tools.mcp);
        let acyclic = self.check_cycles(&agents);

        let agents: Option<Vec<_>> = agent_specs.into_iter().collect();
        let skills: Option<Vec<_>> = skill_specs.into_iter().collect();
        if !acyclic {
            return None;
        }
        Some(Manifest {
            format: FORMAT_VERSION,
            program: program?,
            budgets: budgets?,
            hyper: hyper?,
            agents: agents?,
            skills: skills?,
            meta: meta?,
            tools: tools?,
        })
    }

    /// `server/tool` or `server/*`, each part a plain name: what the settings
    /// can declare and MCP servers name tools with.
    fn tool_requests(&mut self, requests: &[Spanned<String>]) -> Option<ToolRequests> {
        let part_ok = |part: &str| {
            !part.is_empty()
                && part.len() <= 128
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        };
        let mut mcp = Vec::new();
        let mut ok = true;
        for request in requests {
            let text = request.get_ref();
            let valid = match text.split_once('/') {
                Some((server, tool)) => part_ok(server) && (tool == "*" || part_ok(tool)),
                None => false,
            };
            if valid {
                if !mcp.contains(text) {
                    mcp.push(text.clone());
                }
            } else {
                self.error(
                    request.span().start,
                    ProgramErrorKind::InvalidToolRequest {
                        request: text.clone(),
                    },
                );
                ok = false;
            }
        }
        ok.then_some(ToolRequests { mcp })
    }

    fn agent(
        &mut self,
        key: &Spanned<String>,
        a: &RawAgent,
        agent_names: &[String],
        skill_names: &[String],
    ) -> Option<AgentSpec> {
        let name = self.name(key);
        let description = self.non_empty(&a.description, "description");
        let prompt = self.path(&a.prompt, Role::Prompt);
        let script = self.path(&a.script, Role::Script);
        let model = self.model(a.model.as_ref(), ModelAlias::Task);
        let skills = self.references(&a.skills, skill_names, RefKind::Skill);
        let agents = self.references(&a.agents, agent_names, RefKind::Agent);
        let max_steps = match &a.max_steps {
            Some(steps) if *steps.get_ref() == 0 => {
                self.error(
                    steps.span().start,
                    ProgramErrorKind::InvalidBudget {
                        field: "max_steps",
                        reason: "must be at least 1",
                    },
                );
                None
            }
            steps => Some(steps.as_ref().map(|s| *s.get_ref())),
        };
        Some(AgentSpec {
            name: name?,
            description: description?,
            prompt: prompt?,
            script: script?,
            model: model?,
            skills: skills?,
            agents: agents?,
            max_steps: max_steps?,
        })
    }

    fn name(&mut self, key: &Spanned<String>) -> Option<String> {
        let name = key.get_ref();
        let mut chars = name.chars();
        let valid = name.len() <= 64
            && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if valid {
            Some(name.clone())
        } else {
            self.error(
                key.span().start,
                ProgramErrorKind::InvalidName { name: name.clone() },
            );
            None
        }
    }

    fn non_empty(&mut self, value: &Spanned<String>, field: &'static str) -> Option<String> {
        if value.get_ref().trim().is_empty() {
            self.error(value.span().start, ProgramErrorKind::EmptyField { field });
            None
        } else {
            Some(value.get_ref().clone())
        }
    }

    fn model(
        &mut self,
        alias: Option<&Spanned<String>>,
        default: ModelAlias,
    ) -> Option<ModelAlias> {
        let Some(alias) = alias else {
            return Some(default);
        };
        let parsed = ModelAlias::parse(alias.get_ref());
        if parsed.is_none() {
            self.error(
                alias.span().start,
                ProgramErrorKind::UnknownModelAlias {
                    alias: alias.get_ref().clone(),
                },
            );
        }
        parsed
    }

    /// Validates a path field and that it names an existing regular file.
    fn path(&mut self, raw: &Spanned<String>, role: Role) -> Option<RelPath> {
        let offset = raw.span().start;
        let rel = match RelPath::new(raw.get_ref()) {
            Ok(rel) => rel,
            Err(e) => {
                self.error(offset, ProgramErrorKind::InvalidPath(e));
                return None;
            }
        };
        if self.contents.contains_key(&rel) {
            match role {
                Role::Prompt => self.prompt_files.insert(rel.clone()),
                Role::Script | Role::Select => self.script_files.insert(rel.clone()),
            };
            return Some(rel);
        }
        // A link or unreadable file was already reported at the file itself.
        if !self.broken.contains(rel.as_str()) {
            let path = rel.to_string();
            let role = role.as_str();
            let kind = if self.dirs.contains(&rel) {
                ProgramErrorKind::NotAFile { role, path }
            } else {
                ProgramErrorKind::MissingFile { role, path }
            };
            self.error(offset, kind);
        }
        None
    }

    fn references(
        &mut self,
        refs: &[Spanned<String>],
        known: &[String],
        kind: RefKind,
    ) -> Option<Vec<String>> {
        let mut ok = true;
        let mut seen = BTreeSet::new();
        for r in refs {
            let name = r.get_ref();
            if !known.contains(name) {
                ok = false;
                let (name, known) = (name.clone(), known.to_vec());
                let kind = match kind {
                    RefKind::Skill => ProgramErrorKind::UnknownSkill { name, known },
                    RefKind::Agent => ProgramErrorKind::UnknownAgent { name, known },
                };
                self.error(r.span().start, kind);
            } else if !seen.insert(name) {
                ok = false;
                self.error(
                    r.span().start,
                    ProgramErrorKind::DuplicateReference { name: name.clone() },
                );
            }
        }
        ok.then(|| refs.iter().map(|r| r.get_ref().clone()).collect())
    }

    fn budgets(&mut self, raw: &manifest::RawBudgets) -> Option<BudgetRequest> {
        let mut ok = true;
        if let Some(steps) = &raw.max_steps
            && *steps.get_ref() == 0
        {
            ok = false;
            self.error(
                steps.span().start,
                ProgramErrorKind::InvalidBudget {
                    field: "max_steps",
                    reason: "must be at least 1",
                },
            );
        }
        if let Some(calls) = &raw.max_calls
            && *calls.get_ref() == 0
        {
            ok = false;
            self.error(
                calls.span().start,
                ProgramErrorKind::InvalidBudget {
                    field: "max_calls",
                    reason: "must be at least 1",
                },
            );
        }
        if let Some(tokens) = &raw.max_tokens
            && *tokens.get_ref() == 0
        {
            ok = false;
            self.error(
                tokens.span().start,
                ProgramErrorKind::InvalidBudget {
                    field: "max_tokens",
                    reason: "must be at least 1",
                },
            );
        }
        let mut max_wall = None;
        if let Some(secs) = &raw.max_wall_secs {
            match Duration::try_from_secs_f64(*secs.get_ref()) {
                Ok(wall) if !wall.is_zero() => max_wall = Some(wall),
                _ => {
                    ok = false;
                    self.error(
                        secs.span().start,
                        ProgramErrorKind::InvalidBudget {
                            field: "max_wall_secs",
                            reason: "must be a positive, finite number of seconds",
                        },
                    );
                }
            }
        }
        ok.then(|| BudgetRequest {
            max_steps: raw.max_steps.as_ref().map(|s| *s.get_ref()),
            max_calls: raw.max_calls.as_ref().map(|c| *c.get_ref()),
            max_tokens: raw.max_tokens.as_ref().map(|t| *t.get_ref()),
            max_wall,
        })
    }

    /// Finds every delegation cycle among task agents (depth-first, iteratively so a hostile
    /// manifest cannot overflow the stack). Each cycle is reported once, at the reference that
    /// closes it. Returns whether the graph is acyclic.
    fn check_cycles(&mut self, agents: &[(Spanned<String>, RawAgent)]) -> bool {
        let index: HashMap<&str, usize> = agents
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.get_ref().as_str(), i))
            .collect();
        let edges: Vec<Vec<(usize, usize)>> = agents
            .iter()
            .map(|(_, a)| {
                a.agents
                    .iter()
                    .filter_map(|r| Some((*index.get(r.get_ref().as_str())?, r.span().start)))
                    .collect()
            })
            .collect();
        #[derive(Clone, Copy, PartialEq)]
        enum State {
            New,
            OnStack,
            Done,
        }
        let mut state = vec![State::New; agents.len()];
        let mut reported = BTreeSet::new();
        let mut acyclic = true;
        for start in 0..agents.len() {
            if state[start] != State::New {
                continue;
            }
            state[start] = State::OnStack;
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                let Some(&(target, offset)) = edges[node].get(*next) else {
                    state[node] = State::Done;
                    stack.pop();
                    continue;
                };
                *next += 1;
                match state[target] {
                    State::New => {
                        state[target] = State::OnStack;
                        stack.push((target, 0));
                    }
                    State::OnStack => {
                        acyclic = false;
                        let from = stack.iter().position(|&(n, _)| n == target).unwrap_or(0);
                        let members: Vec<usize> = stack[from..].iter().map(|&(n, _)| n).collect();
                        // Rotate to the smallest index so each cycle is reported once.
                        let mut canonical = members.clone();
                        if let Some(min) = (0..canonical.len()).min_by_key(|&i| canonical[i]) {
                            canonical.rotate_left(min);
                        }
                        if reported.insert(canonical) {
                            let mut cycle: Vec<String> = members
                                .iter()
                                .map(|&n| agents[n].0.get_ref().clone())
                                .collect();
                            cycle.push(agents[target].0.get_ref().clone());
                            self.error(offset, ProgramErrorKind::DelegationCycle { cycle });
                        }
                    }
                    State::Done => {}
                }
            }
        }
        acyclic
    }
}
