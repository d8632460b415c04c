//! The evolving program: the directory format, its loader and validator, prompt templates,
//! content hashes, budgets, and the sandboxed editor the meta agent uses on a child.
//!
//! A program is a directory:
//!
//! ```text
//! hyperagent.toml   manifest (format, budgets, hierarchy, models by alias)
//! hyper/            coordinator: prompt.md + main.py
//! tasks/<name>/     task agents: prompt.md + policy.py
//! skills/<name>/    skill agents: prompt.md and/or skill.py
//! meta/             meta agent: prompt.md + improve.py (+ select.py)
//! memory/           the meta agent's notes
//! ```
//!
//! This crate knows nothing of how scripts run (the runtime plugs in a [`ScriptChecker`]), of
//! models (agents name an alias the run binds), or of the archive (it yields hashes and diffs).

pub mod budget;
pub mod diff;
pub mod edit_format;
pub mod editor;
pub mod error;
pub mod files;
pub mod hash;
mod manifest;
pub mod path;
pub mod program;
pub mod script;
pub mod template;

pub use budget::{BudgetRequest, EffectiveBudget, RunCaps};
pub use diff::{ChangeStatus, DiffKind, FileChange, ProgramDiff, classify, diff_dirs};
pub use edit_format::{ParseProblem, ParsedChange, ParsedEdit, ParsedReply, parse_edits};
pub use editor::{
    ChildProgram, EditError, EditLimits, EditOp, EditOutcome, EditRecord, FileEntry, Pattern,
    SearchHit, SearchResults,
};
pub use error::{Location, ProgramError, ProgramErrorKind};
pub use files::{FsError, copy_program, list_program_files, read_all as read_program_files};
pub use hash::{ContentHash, content_hash_dir, episode_hash_dir, hash_files, is_episode_file};
pub use manifest::{FORMAT_VERSION, MANIFEST_FILE};
pub use path::{PathError, RelPath};
pub use program::{
    AgentSpec, HyperSpec, Manifest, MetaSpec, ModelAlias, Program, ProgramInfo, SkillSpec,
    ToolRequests,
};
pub use script::{ScriptChecker, ScriptSyntaxError};
pub use template::{MAX_RENDER_BYTES, PromptTemplate, Prompts, RENDER_FUEL, RenderError};
