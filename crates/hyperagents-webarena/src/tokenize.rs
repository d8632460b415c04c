//! NLTK's word tokenizer (`NLTKWordTokenizer`, the Treebank rules behind
//! `nltk.word_tokenize`), which WebArena's `must_include` uses when the
//! only reference is one character, so that `0` does not match `10`.
//!
//! `word_tokenize` first splits sentences with the Punkt model; this port
//! tokenizes the text as one sentence (Punkt needs model data), so a period
//! is split off only at the very end, and it leaves out the MacIntyre
//! contraction splits (`cannot` → `can not`), which never yield the
//! one-character tokens this is used for.

use std::sync::LazyLock;

use regex::Regex;

/// The tokens of `text`, as `NLTKWordTokenizer().tokenize(text)` gives them.
pub fn word_tokenize(text: &str) -> Vec<String> {
    let mut text = text.to_string();
    for (pattern, replacement) in STARTING_QUOTES.iter() {
        text = pattern.replace_all(&text, *replacement).into_owned();
    }
    text = split_opening_single_quotes(&text);
    for (pattern, replacement) in PUNCTUATION.iter() {
        text = pattern.replace_all(&text, *replacement).into_owned();
    }
    text = PARENS_BRACKETS.replace_all(&text, " $0 ").into_owned();
    text = text.replace("--", " -- ");
    text = format!(" {text} ");
    for (pattern, replacement) in ENDING_QUOTES.iter() {
        text = pattern.replace_all(&text, *replacement).into_owned();
    }
    text.split(crate::py::is_py_space)
        .filter(|token| !token.is_empty())
        .map(str::to_string)
        .collect()
}

type Rule = (Regex, &'static str);

fn rules(table: &[(&str, &'static str)]) -> Vec<Rule> {
    table
        .iter()
        .map(|(pattern, replacement)| {
            // The patterns are constants checked by the unit tests.
            #[allow(clippy::unwrap_used)]
            let regex = Regex::new(pattern).unwrap();
            (regex, *replacement)
        })
        .collect()
}

static STARTING_QUOTES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    rules(&[
        ("([«“‘„]|`+)", " ${1} "),
        ("^\"", "``"),
        ("(``)", " ${1} "),
        ("([ (\\[{<])(\"|'')", "${1} `` "),
    ])
});

static PUNCTUATION: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    rules(&[
        ("([^.])(\\.)([\\])}>\"'»”’ ]*)\\s*$", "${1} ${2} ${3} "),
        ("([:,])([^\\d])", " ${1} ${2}"),
        ("([:,])$", " ${1} "),
        ("\\.{2,}", " ${0} "),
        ("[;@#$%&]", " ${0} "),
        ("[\u{2012}-\u{2015}]", " ${0} "),
        ("([^.])(\\.)([\\])}>\"']*)\\s*$", "${1} ${2}${3} "),
        ("[?!]", " ${0} "),
        ("([^'])' ", "${1} ' "),
        ("[*]", " ${0} "),
    ])
});

static PARENS_BRACKETS: LazyLock<Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)]
    let regex = Regex::new("[\\]\\[(){}<>]").unwrap();
    regex
});

static ENDING_QUOTES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    rules(&[
        ("([»”’])", " ${1} "),
        ("''", " '' "),
        ("\"", " '' "),
        ("\\s+", " "),
        ("([^' ])('[sS]|'[mM]|'[dD]|') ", "${1} ${2} "),
        ("([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", "${1} ${2} "),
    ])
});

/// NLTK's `(?i)(?<!\w)(\')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)` → `\1 `: an
/// opening single quote before a word that is not a clitic gets a space.
/// Written by hand because the regex crate has no look-around.
fn split_opening_single_quotes(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut out = String::with_capacity(text.len() + 8);
    for (index, c) in chars.iter().enumerate() {
        out.push(*c);
        if *c != '\'' {
            continue;
        }
        let after_word = index > 0 && is_word(chars[index - 1]);
        let before_word = chars.get(index + 1).is_some_and(|next| is_word(*next));
        if after_word || !before_word {
            continue;
        }
        let rest: String = chars[index + 1..].iter().collect::<String>().to_lowercase();
        let clitic = ["re", "ve", "ll", "m", "t", "s", "d", "n"]
            .iter()
            .any(|clitic| {
                rest.starts_with(clitic)
                    && !rest[clitic.len()..].chars().next().is_some_and(is_word)
            });
        if !clitic {
            out.push(' ');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        word_tokenize(text)
    }

    #[test]
    fn splits_like_nltk() {
        assert_eq!(
            tokens("Good muffins cost $3.88 (roughly 3,36 euros) in New York."),
            [
                "Good", "muffins", "cost", "$", "3.88", "(", "roughly", "3,36", "euros", ")", "in",
                "New", "York", "."
            ]
        );
        assert_eq!(
            tokens("there are 0 reviews."),
            ["there", "are", "0", "reviews", "."]
        );
        assert_eq!(tokens("10, 20: 0%"), ["10", ",", "20", ":", "0", "%"]);
        assert_eq!(
            tokens("it's 'quoted' don't"),
            ["it", "'s", "'", "quoted", "'", "do", "n't"]
        );
        assert_eq!(tokens("\"2\""), ["``", "2", "''"]);
    }
}
