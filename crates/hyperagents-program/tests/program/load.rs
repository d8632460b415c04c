//! Loading and validating programs: the seed loads with the right specs, and each fault is
//! reported at the right `file:line:col`, all of them in one pass.

use std::time::Duration;

use hyperagents_program::{ModelAlias, RunCaps};
use serde_json::json;

use crate::support::{
    FakeChecker, MANIFEST, edit, load, load_errors, pos, pos_in, seed_dir, seed_with_manifest,
    write_files,
};

/// The one helper most cases go through: load `dir` and expect exactly `expected`.
fn check(dir: &std::path::Path, expected: &[String]) {
    assert_eq!(load_errors(dir), expected);
}

fn manifest_case(old: &str, new: &str) -> (tempfile::TempDir, String) {
    seed_with_manifest(|m| edit(m, old, new))
}

#[test]
fn seed_loads_with_specs_in_declaration_order() {
    let dir = seed_dir();
    let program = load(dir.path()).unwrap();
    assert_eq!(program.info().name, "seed");
    let agents: Vec<_> = program.agents().iter().map(|a| a.name.as_str()).collect();
    assert_eq!(agents, ["web", "qa"]);
    let skills: Vec<_> = program.skills().iter().map(|s| s.name.as_str()).collect();
    assert_eq!(skills, ["click", "type_text", "answer"]);

    let web = program.agent("web").unwrap();
    assert_eq!(web.prompt.as_str(), "tasks/web/prompt.md");
    assert_eq!(web.script.as_str(), "tasks/web/policy.py");
    assert_eq!(web.skills, ["click", "type_text", "answer"]);
    assert_eq!(web.max_steps, Some(20));
    assert_eq!(program.agent("qa").unwrap().model, ModelAlias::Task); // default
    assert_eq!(program.skill("answer").unwrap().model, ModelAlias::Judge);
    assert_eq!(program.skill("type_text").unwrap().prompt, None);
    assert_eq!(program.hyper().agents, ["web", "qa"]);
    assert_eq!(
        program.meta().select.as_ref().map(|p| p.as_str()),
        Some("meta/select.py")
    );
    assert_eq!(program.meta().model, ModelAlias::Meta);

    assert_eq!(
        program.source("tasks/qa/policy.py"),
        Some("skill(\"answer\", text=llm(goal))\n")
    );
    assert_eq!(program.files().count(), 15);
    assert_eq!(
        program.host_path(&web.script),
        dir.path().join("tasks/web/policy.py")
    );
    let scripts: Vec<_> = program
        .manifest()
        .script_files()
        .into_iter()
        .map(|p| p.as_str())
        .collect();
    assert_eq!(
        scripts,
        [
            "hyper/main.py",
            "meta/improve.py",
            "meta/select.py",
            "skills/click/skill.py",
            "skills/type_text/skill.py",
            "tasks/qa/policy.py",
            "tasks/web/policy.py"
        ]
    );
}

#[test]
fn prompts_render_with_the_runtime_variables() {
    let dir = seed_dir();
    let program = load(dir.path()).unwrap();
    let out = program
        .prompts()
        .render(
            "hyper/prompt.md",
            json!({"goal": "buy milk", "agents": ["web", "qa"]}),
        )
        .unwrap();
    assert_eq!(out, "Goal: buy milk\nAgents: web, qa\n");
    let template = program.prompts().get("tasks/web/prompt.md").unwrap();
    assert_eq!(
        template.source(),
        "Goal: {{ goal }}\nPage:\n{{ observation }}\n"
    );
}

#[test]
fn missing_variable_at_render_names_prompt_line_and_variable() {
    let dir = seed_dir();
    let program = load(dir.path()).unwrap();
    let err = program
        .prompts()
        .render("tasks/web/prompt.md", json!({"goal": "x"}))
        .unwrap_err();
    assert_eq!(err.variable.as_deref(), Some("observation"));
    assert_eq!(
        err.to_string(),
        "tasks/web/prompt.md:3:4: undefined variable `observation`"
    );
}

#[test]
fn budgets_are_requests_capped_by_the_run() {
    let dir = seed_dir();
    let program = load(dir.path()).unwrap();
    let request = program.budgets();
    assert_eq!(request.max_steps, Some(40));
    assert_eq!(request.max_calls, Some(100));
    assert_eq!(request.max_wall, Some(Duration::from_secs(120)));
    let tight = RunCaps {
        max_steps: 10,
        max_calls: 30,
        max_tokens: 1_000_000,
        max_wall: Duration::from_secs(30),
    };
    let got = request.cap(&tight);
    assert_eq!(
        (got.max_steps, got.max_calls, got.max_tokens, got.max_wall),
        (10, 30, 20_000, Duration::from_secs(30))
    );
    let web = program.agent("web").unwrap();
    assert_eq!(got.steps_for_agent(web.max_steps), 10);
}

#[test]
fn toml_syntax_error_points_at_the_line() {
    let (dir, m) = manifest_case("[agents.qa]", "[agents.qa");
    let errors = load_errors(dir.path());
    assert_eq!(errors.len(), 1);
    let line = pos(&m, "[agents.qa").split(':').next().unwrap().to_owned();
    assert!(
        errors[0].starts_with(&format!("hyperagent.toml:{line}:")),
        "{errors:?}"
    );
}

#[test]
fn schema_error_names_the_unknown_field() {
    let (dir, m) = manifest_case("skills = [\"answer\"]", "skils = [\"answer\"]");
    let errors = load_errors(dir.path());
    assert_eq!(errors.len(), 1, "{errors:?}");
    let at = format!(
        "hyperagent.toml:{}: unknown field `skils`",
        pos(&m, "skils")
    );
    assert!(errors[0].starts_with(&at), "{errors:?}");
}

#[test]
fn unknown_skill_lists_known_skills_in_declaration_order() {
    let (dir, m) = manifest_case("[\"click\", \"type_text\"", "[\"clik\", \"type_text\"");
    check(
        dir.path(),
        &[format!(
            "hyperagent.toml:{}: unknown skill `clik` (known: click, type_text, answer)",
            pos(&m, "\"clik\"")
        )],
    );
}

#[test]
fn unknown_task_agent() {
    let (dir, m) = manifest_case("agents = [\"web\", \"qa\"]", "agents = [\"web\", \"qq\"]");
    check(
        dir.path(),
        &[format!(
            "hyperagent.toml:{}: unknown task agent `qq` (known: web, qa)",
            pos(&m, "\"qq\"")
        )],
    );
}

#[test]
fn unknown_model_alias() {
    let (dir, m) = manifest_case("model = \"judge\"", "model = \"gpt-4\"");
    check(
        dir.path(),
        &[format!(
            "hyperagent.toml:{}: unknown model alias `gpt-4` (allowed: task, meta, judge)",
            pos(&m, "\"gpt-4\"")
        )],
    );
}

#[test]
fn missing_prompt_file_points_at_the_manifest_line() {
    let dir = seed_dir();
    std::fs::remove_file(dir.path().join("tasks/qa/prompt.md")).unwrap();
    check(
        dir.path(),
        &[format!(
            "hyperagent.toml:{}: missing prompt file `tasks/qa/prompt.md`",
            pos(MANIFEST, "\"tasks/qa/prompt.md\"")
        )],
    );
}

#[test]
fn a_directory_is_not_a_script() {
    let (dir, m) = manifest_case("\"meta/select.py\"", "\"memory\"");
    check(
        dir.path(),
        &[format!(
            "hyperagent.toml:{}: select script path `memory` is a directory, not a file",
            pos(&m, "\"memory\"")
        )],
    );
}

#[test]
fn delegation_cycle_is_named() {
    let (dir, m) = seed_with_manifest(|m| {
        let m = edit(m, "max_steps = 20\n", "max_steps = 20\nagents = [\"qa\"]\n");
        edit(
            &m,
            "skills = [\"answer\"]\n",
            "skills = [\"answer\"]\nagents = [\"web\"]\n",
        )
    });
    check(
        dir.path(),
        &[format!(
            "hyperagent.toml:{}: delegation cycle: web -> qa -> web",
            pos(&m, "\"web\"]\n")
        )],
    );
}

#[test]
fn self_delegation_is_a_cycle() {
    let (dir, m) = manifest_case(
        "skills = [\"answer\"]\n",
        "skills = [\"answer\"]\nagents = [\"qa\"]\n",
    );
    check(
        dir.path(),
        &[format!(
            "hyperagent.toml:{}: delegation cycle: qa -> qa",
            pos_in(&m, "agents = [\"qa\"]", "\"qa\"")
        )],
    );
}

#[test]
fn escaping_and_absolute_paths_are_refused() {
    let (dir, m) = seed_with_manifest(|m| {
        let m = edit(m, "\"tasks/qa/prompt.md\"", "\"../outside.md\"");
        edit(&m, "\"skills/click/skill.py\"", "\"/etc/passwd\"")
    });
    write_files(dir.path().parent().unwrap(), &[("outside.md", "x")]);
    check(
        dir.path(),
        &[
            format!(
                "hyperagent.toml:{}: invalid path: path `../outside.md` contains `..`; paths may not leave the program root",
                pos(&m, "\"../outside.md\"")
            ),
            format!(
                "hyperagent.toml:{}: invalid path: path `/etc/passwd` is absolute; paths are relative to the program root",
                pos(&m, "\"/etc/passwd\"")
            ),
        ],
    );
}

#[test]
fn script_syntax_error_comes_from_the_checker_with_its_position() {
    let dir = seed_dir();
    write_files(
        dir.path(),
        &[("tasks/web/policy.py", "obs = observe()\nx = SYNTAX ERROR\n")],
    );
    check(
        dir.path(),
        &["tasks/web/policy.py:2:5: script syntax error: invalid syntax".to_owned()],
    );
}

#[test]
fn template_syntax_error_points_at_the_prompt_line() {
    let dir = seed_dir();
    write_files(
        dir.path(),
        &[(
            "skills/answer/prompt.md",
            "Answer:\n{% if answer %}\n{{ answer }}\n",
        )],
    );
    // An unclosed block is reported where the input ends.
    let errors = load_errors(dir.path());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("skills/answer/prompt.md:3:13: template error: syntax error"),
        "{errors:?}"
    );

    write_files(
        dir.path(),
        &[("skills/answer/prompt.md", "one\ntwo {{ answer }\n")],
    );
    let errors = load_errors(dir.path());
    assert!(
        errors[0].starts_with("skills/answer/prompt.md:2:"),
        "{errors:?}"
    );
}

#[test]
fn skill_needs_a_prompt_or_a_script() {
    let (dir, m) = manifest_case("prompt = \"skills/answer/prompt.md\"\n", "");
    check(
        dir.path(),
        &[format!(
            "hyperagent.toml:{}: skill `answer` has neither `prompt` nor `script`; give at least one",
            pos(&m, "answer]")
        )],
    );
}

#[test]
fn invalid_budgets_and_names() {
    let (dir, m) = seed_with_manifest(|m| {
        let m = edit(m, "max_wall_secs = 120.0", "max_wall_secs = -1.0");
        let m = edit(&m, "max_steps = 20", "max_steps = 0");
        let m = edit(&m, "max_calls = 100", "max_calls = 0");
        edit(&m, "[skills.click]", "[skills.\"cl ick\"]")
    });
    let errors = load_errors(dir.path());
    assert!(errors.contains(&format!(
        "hyperagent.toml:{}: `max_wall_secs` must be a positive, finite number of seconds",
        pos(&m, "-1.0")
    )));
    assert!(errors.contains(&format!(
        "hyperagent.toml:{}: `max_steps` must be at least 1",
        pos_in(&m, "max_steps = 0", "0")
    )));
    assert!(errors.contains(&format!(
        "hyperagent.toml:{}: `max_calls` must be at least 1",
        pos_in(&m, "max_calls = 0", "0")
    )));
    assert!(
        errors.iter().any(|e| e.starts_with(&format!(
            "hyperagent.toml:{}: invalid name `cl ick`",
            pos(&m, "\"cl ick\"")
        ))),
        "{errors:?}"
    );
}

#[test]
fn all_errors_are_collected_in_one_load() {
    let (dir, m) = seed_with_manifest(|m| {
        let m = edit(m, "\"click\", \"type_text\"", "\"clik\", \"type_text\"");
        let m = edit(
            &m,
            "agents = [\"web\", \"qa\"]",
            "agents = [\"web\", \"qq\"]",
        );
        edit(&m, "model = \"judge\"", "model = \"gpt\"")
    });
    std::fs::remove_file(dir.path().join("tasks/qa/prompt.md")).unwrap();
    write_files(
        dir.path(),
        &[
            ("meta/improve.py", "SYNTAX ERROR\n"),
            ("hyper/prompt.md", "{{ goal\n"),
        ],
    );
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("memory/link.md")).unwrap();
    let errors = load_errors(dir.path());
    let expected_prefixes = [
        format!(
            "hyperagent.toml:{}: unknown task agent `qq`",
            pos(&m, "\"qq\"")
        ),
        format!(
            "hyperagent.toml:{}: unknown skill `clik`",
            pos(&m, "\"clik\"")
        ),
        format!(
            "hyperagent.toml:{}: missing prompt file",
            pos(&m, "\"tasks/qa/prompt.md\"")
        ),
        format!(
            "hyperagent.toml:{}: unknown model alias `gpt`",
            pos(&m, "\"gpt\"")
        ),
        "hyper/prompt.md:1:".to_owned(),
        "memory/link.md: is a symbolic link".to_owned(),
        "meta/improve.py:1:1: script syntax error".to_owned(),
    ];
    assert_eq!(errors.len(), expected_prefixes.len(), "{errors:#?}");
    for (error, prefix) in errors.iter().zip(&expected_prefixes) {
        assert!(error.starts_with(prefix.as_str()), "{error} !~ {prefix}");
    }
}

#[test]
fn a_missing_directory_is_named_once_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let errors = hyperagents_program::Program::load(&missing, &FakeChecker).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let shown = errors[0].in_dir(&missing);
    let name = missing.display().to_string();
    assert!(
        shown.starts_with(&format!("{name}: cannot read")),
        "{shown}"
    );
    assert_eq!(shown.matches(&name).count(), 1, "{shown}");
    // Inside the program, the file follows the directory.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let errors = hyperagents_program::Program::load(&empty, &FakeChecker).unwrap_err();
    assert_eq!(
        errors[0].in_dir(&empty),
        format!(
            "{}/hyperagent.toml: missing manifest: a program directory needs `hyperagent.toml` at its root",
            empty.display()
        )
    );
}

#[test]
fn missing_manifest_and_foreign_format() {
    let dir = tempfile::tempdir().unwrap();
    check(
        dir.path(),
        &["hyperagent.toml: missing manifest: a program directory needs `hyperagent.toml` at its root".to_owned()],
    );
    let (dir, m) = manifest_case("format = 1", "format = 2");
    check(
        dir.path(),
        &[format!(
            "hyperagent.toml:{}: unsupported manifest format 2; this build reads format 1",
            pos_in(&m, "format = ", "2")
        )],
    );
}

#[test]
fn a_symlinked_prompt_is_refused_at_the_link() {
    let dir = seed_dir();
    let outside = tempfile::tempdir().unwrap();
    write_files(outside.path(), &[("p.md", "hi")]);
    std::fs::remove_file(dir.path().join("tasks/qa/prompt.md")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("p.md"),
        dir.path().join("tasks/qa/prompt.md"),
    )
    .unwrap();
    check(
        dir.path(),
        &["tasks/qa/prompt.md: is a symbolic link; programs may not contain links".to_owned()],
    );
}

#[test]
fn the_checker_sees_every_named_script_once() {
    use std::cell::RefCell;
    struct Recorder(RefCell<Vec<String>>);
    impl hyperagents_program::ScriptChecker for Recorder {
        fn check(&self, file: &str, _: &str) -> Result<(), hyperagents_program::ScriptSyntaxError> {
            self.0.borrow_mut().push(file.to_owned());
            Ok(())
        }
    }
    let dir = seed_dir();
    let recorder = Recorder(RefCell::new(Vec::new()));
    hyperagents_program::Program::load(dir.path(), &recorder).unwrap();
    assert_eq!(recorder.0.borrow().len(), 7);
    // The fake checker is really consulted (guards the tests above against a no-op checker).
    assert!(hyperagents_program::ScriptChecker::check(&FakeChecker, "x", "SYNTAX ERROR").is_err());
}

#[test]
fn tool_requests_are_server_slash_tool_and_malformed_ones_are_named() {
    let (dir, _) = seed_with_manifest(|m| {
        format!("{m}\n[tools]\nmcp = [\"everything/get-sum\", \"search/*\", \"search/*\"]\n")
    });
    let program = load(dir.path()).unwrap();
    assert_eq!(
        program.manifest().tools.mcp,
        ["everything/get-sum", "search/*"],
        "kept in order, once each"
    );
    // Without `[tools]` a program asks for nothing.
    assert!(
        load(seed_dir().path())
            .unwrap()
            .manifest()
            .tools
            .mcp
            .is_empty()
    );

    let (dir, m) = seed_with_manifest(|m| {
        format!("{m}\n[tools]\nmcp = [\"no-slash\", \"a/b/c\", \"*/x\", \"ok/fine\"]\n")
    });
    let errors = load_errors(dir.path());
    let expected: Vec<String> = ["no-slash", "a/b/c", "*/x"]
        .iter()
        .map(|bad| {
            format!(
                "hyperagent.toml:{}: invalid tool request `{bad}`: write `server/tool` or \
                 `server/*` (letters, digits, `_`, `-`, `.`)",
                pos(&m, &format!("\"{bad}\""))
            )
        })
        .collect();
    assert_eq!(errors, expected);
}
