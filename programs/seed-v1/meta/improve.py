# The meta agent: read the failures, ask the meta model for one edit, apply it,
# validate the child, and retry with the errors if it was rejected.
# Host functions: failures, trajectory, list_files, read_file, search, replace,
# write_file, insert, delete_file, check, llm, prompt, language_gaps, log, remember,
# context (where this edit stands in the evolution run: generation, generations
# left, the parent's train scores, the archive, what earlier edits of each kind
# did, the budget, and under "repair" the errors of a rejected attempt), and
# quick_eval (runs the edited child on a few train tasks).
import re

failed = failures()
lines = []
for f in failed[:6]:
    lines.append("- task " + str(f["task"]) + ": " + str(f["reason"]) + "; failed at " + str(f["failed_at"]) + ": " + str(f["error"]))
summary_text = "\n".join(lines)
if summary_text == "":
    summary_text = "(no failures were recorded)"

detail = ""
if len(failed) > 0:
    try:
        detail = trajectory(failed[0]["task"])[:2500]
    except ValueError:
        detail = ""

situation = context()
situation_text = ""
repair = None
quick_calls = 0
if situation:
    repair = situation.get("repair")
    quick = situation.get("quick_eval")
    if quick:
        quick_calls = quick.get("calls", 0)
    shown_situation = {}
    for key in ["generation", "generations_left", "parent_train_success_by_task", "edit_effects", "budget"]:
        if key in situation:
            shown_situation[key] = situation[key]
    situation_text = str(shown_situation)[:1500]

listing = list_files("")
paths = [entry["path"] for entry in listing]

# Which files the failed episodes ran through (scripts run, prompts rendered):
# an edit anywhere else cannot change how those episodes went.
uses = {}
for f in failed:
    for p in f.get("files", []):
        uses[p] = uses.get(p, 0) + 1
used_paths = sorted(uses.keys(), key=lambda p: -uses[p])
file_lines = []
for p in paths:
    if p in uses:
        file_lines.append("- " + p + " (used by " + str(uses[p]) + " failed episodes)")
    elif len(uses) > 0 and p != "hyperagent.toml" and not p.startswith("meta/") and not p.startswith("memory/"):
        file_lines.append("- " + p + " (not used by the failed episodes)")
    else:
        file_lines.append("- " + p)
files_text = "\n".join(file_lines)

# The files this run lets an edit touch: prompt-only runs edit prompts only,
# fixed-meta runs leave meta/ alone; notes go through remember(), not edits.
mode = ""
if situation:
    mode = situation.get("mode", "")
editable = []
for p in paths:
    if p.startswith("memory/"):
        continue
    if mode in ["prompt-only", "fixed-meta"] and p.startswith("meta/"):
        continue
    if mode == "prompt-only" and not (p.endswith(".md") or p.endswith(".txt") or p.endswith(".jinja") or p.endswith(".j2")):
        continue
    editable.append(p)

# An edit can only change how the failed episodes went if it touches a file
# they used (or the manifest, which shapes every episode): offer those, most
# used first, when the failures say which files they used.
if len(uses) > 0:
    targeted = [p for p in used_paths if p in editable]
    if "hyperagent.toml" in editable:
        targeted.append("hyperagent.toml")
    if len(targeted) > 0:
        editable = targeted

# Improving the improver (hyper mode only): once earlier edits have been
# evaluated without an accepted improvement, a step whose parent did not
# itself just change meta/ edits this meta agent instead of the task program,
# so that the next generations edit better. A parent that changed meta/ gets
# a task edit, so its new meta agent is put to use.
meta_turn = False
if mode == "hyper" and not repair:
    tried = 0
    accepted = 0
    for kind, effect in situation.get("edit_effects", {}).items():
        tried = max(tried, effect.get("children", 0))
        accepted = accepted + effect.get("accepted", 0)
    parent_changed_meta = False
    for entry in situation.get("best_of_archive", []):
        if entry.get("node") == situation.get("parent") and "meta" in entry.get("changed", []):
            parent_changed_meta = True
    meta_turn = tried >= 2 and accepted == 0 and not parent_changed_meta
meta_files = [p for p in ["meta/prompt.md", "meta/improve.py"] if p in paths and mode == "hyper"]
if meta_turn and len(meta_files) > 0:
    editable = meta_files
else:
    meta_turn = False

# Show the files the failed episodes used (most used first) and the manifest
# (it shapes every episode). When the failures say which files they used, the
# others are left out: shown, their text was quoted as the snippet to replace
# in a used file (2 of 3 edits in the first efficacy experiment failed so).
order = used_paths + ["hyperagent.toml"]
if len(uses) == 0:
    order = order + [p for p in paths if p != "hyperagent.toml"]
shown = []
budget_chars = 6000
for p in order:
    if p.startswith("meta/") or p.startswith("memory/") or p not in paths:
        continue
    text = read_file(p)
    if len(text) > 1500:
        text = text[:1500] + "\n..."
    if budget_chars - len(text) < 0:
        break
    budget_chars = budget_chars - len(text)
    shown.append("### " + p + "\n" + text)
sources = "\n\n".join(shown)
focus = ""
if meta_turn:
    # The meta agent's own files, in full where they fit: they are what this step edits.
    own = []
    for p in meta_files:
        text = read_file(p)
        if len(text) > 4000:
            text = text[:4000] + "\n..."
        own.append("### " + p + "\n" + text)
    sources = "\n\n".join(own) + "\n\n" + sources[:2000]
    detail = detail[:800]
    focus = "Earlier edits to the task program were evaluated and none improved it. This time improve the improver: edit meta/prompt.md (the instructions you are reading now) or meta/improve.py (the script that gathers the evidence, asks for an edit and checks it) so that future edits fix failures more often. Keep it general and keep the script valid."

schema = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "maxLength": 300},
        "path": {"type": "string", "enum": editable},
        "operation": {"type": "string", "enum": ["replace", "write"]},
        "old": {"type": "string", "maxLength": 1500},
        "new": {"type": "string", "maxLength": 3000},
    },
    "required": ["reason", "path", "operation", "old", "new"],
}

def placeholders(text):
    # The names a prompt template fills in: {{ name }}, {{ name.attr }}, {{ name|filter }}.
    return set(re.findall(r"\{\{\s*([A-Za-z_][A-Za-z_0-9]*)", text))

def same_text(path, old, new):
    # Whether an edit left a file saying what it said: reflowing a prompt's
    # lines is no edit (most of one run's meta edits only rejoined lines);
    # in code, spacing can be meaning, so only identical text counts.
    if old == new:
        return True
    if path.endswith(".py"):
        return False
    return " ".join(old.split()) == " ".join(new.split())

def undo(path, before):
    # Puts a file back as it was before a rejected edit.
    if before is None:
        delete_file(path)
    else:
        write_file(path, before)

previous = ""
if repair:
    # A repair round: the files below are the rejected child's; fix them.
    previous = "the edit you made was rejected: " + "; ".join(repair["errors"])[:600] + "\nIts diff:\n" + str(repair["rejected_diff"])[:1200]
failed_tasks = []
for f in failed:
    if f["task"] not in failed_tasks:
        failed_tasks.append(f["task"])
applied = False
attempt = 0
while attempt < 3 and not applied:
    attempt = attempt + 1
    text = prompt(failures=summary_text, detail=detail, files=files_text, sources=sources, previous=previous, situation=situation_text, focus=focus)
    try:
        edit = llm(text, schema=schema, max_tokens=900, temperature=0.7)
    except ValueError as error:
        previous = "your reply was not valid JSON: " + str(error)[:200]
        continue
    except RuntimeError as error:
        # The model refused the request, most often because the prompt is
        # longer than its context: send less evidence next time.
        log("the meta model failed: " + str(error)[:300])
        detail = ""
        sources = sources[:len(sources) // 2]
        continue
    path = edit["path"]
    before = None
    try:
        before = read_file(path)
    except ValueError:
        before = None
    if edit["operation"] == "write" and before is not None and len(edit["new"]) * 3 < len(before):
        # Small models answer "write" with a stub (often just the path),
        # which would throw most of the file away.
        previous = "your write would replace " + path + " (" + str(len(before)) + " characters) with " + str(len(edit["new"])) + " characters; rewrite the whole file, or use replace with an exact snippet"
        log(previous)
        continue
    try:
        if edit["operation"] == "write":
            write_file(path, edit["new"])
        else:
            replace(path, edit["old"], edit["new"])
    except ValueError as error:
        # Small models often quote a snippet of one file under another
        # file's name: apply it where the snippet occurs exactly once.
        moved = False
        if edit["operation"] == "replace" and len(edit["old"].strip()) > 0:
            for other in editable:
                if moved or other == path:
                    continue
                text = read_file(other)
                if text.count(edit["old"]) == 1:
                    path = other
                    before = text
                    replace(other, edit["old"], edit["new"])
                    log("the snippet was not in " + edit["path"] + "; applied it to " + other)
                    moved = True
        if not moved:
            previous = "the edit could not be applied: " + str(error)[:300]
            log(previous)
            if before is not None and edit["operation"] == "replace":
                # Show the file as it is, so the next "old" can be copied from it.
                previous = previous + "\nThe file " + path + " reads:\n" + before[:1200]
            continue
    if before is not None and same_text(path, before, read_file(path)):
        undo(path, before)
        previous = "your edit left " + path + " saying what it said (only spaces or line breaks changed, or nothing); change its content"
        log(previous)
        continue
    if path.endswith(".md") and before is not None:
        # A prompt that drops a placeholder stops showing its model that
        # input (the goal, the page, the failures): refuse such an edit.
        lost = sorted(placeholders(before) - placeholders(read_file(path)))
        if len(lost) > 0:
            undo(path, before)
            previous = "your edit removed the placeholders " + ", ".join(["{{ " + n + " }}" for n in lost]) + " from " + path + "; keep every placeholder, or the model stops seeing that input"
            log(previous)
            continue
    errors = check()
    if len(errors) > 0:
        undo(path, before)
        previous = "the edited program is invalid: " + "; ".join(errors)[:400]
        log(previous)
        continue
    if quick_calls > 0 and len(failed_tasks) > 0 and not meta_turn:
        # Run the edited child on a couple of the failed train tasks: an edit
        # that breaks the program outright is undone before anyone evaluates it.
        # (An edit to meta/ cannot change an episode, so it is not run.)
        quick_calls = quick_calls - 1
        broken = []
        try:
            for result in quick_eval(failed_tasks[:2]):
                if result["defect"]:
                    broken.append(result["defect"])
        except ValueError as error:
            log("quick_eval refused: " + str(error)[:200])
        if len(broken) > 0:
            undo(path, before)
            previous = "the edited program failed to run: " + "; ".join(broken)[:400]
            log(previous)
            continue
    applied = True
    remember(("improved the improver, " if meta_turn else "") + "edited " + path + ": " + str(edit["reason"])[:200])
    log("applied an edit to " + path)
applied
