# The answerer: read what the task attached (by code), let the model call one
# tool when the environment offers others, reason over what is known, then
# extract a short answer and submit it. `goal` and `context` are given.
import re

# Characters of each file or tool result kept for the model; files read.
NOTE_CHARS = 3000
FILES_READ = 2

offered = tools()
names = [t["name"] for t in offered]
notes = []
if "read_file" in names:
    seen = []
    for name in re.findall(r"[\w\-]+\.[A-Za-z][A-Za-z0-9]{0,4}\b", goal):
        if name in seen or len(seen) >= FILES_READ:
            continue
        seen.append(name)
        try:
            notes.append("File " + name + ":\n" + str(tool("read_file", {"path": name}))[:NOTE_CHARS])
        except ValueError as error:
            log("could not read " + name + ": " + str(error)[:200])
others = [t for t in offered if t["name"] != "read_file"]
if len(others) > 0:
    choice = skill("choose_tool", {"question": goal, "notes": "\n\n".join(notes), "tools": others})
    if choice["tool"] != "none":
        spec = others[[t["name"] for t in others].index(choice["tool"])]
        keys = list(spec.get("parameters", {}).get("properties", {}).keys())
        if len(keys) > 0:
            try:
                result = tool(choice["tool"], {keys[0]: choice["input"]})
                notes.append(choice["tool"] + "(" + choice["input"] + ") returned:\n" + str(result)[:NOTE_CHARS])
            except ValueError as error:
                notes.append(choice["tool"] + "(" + choice["input"] + ") failed: " + str(error)[:300])
# What was read and computed goes before the question the reasoning sees.
question = goal
if len(notes) > 0:
    question = "What is known:\n" + "\n\n".join(notes) + "\n\n" + goal
reasoning = skill("reason", {"question": question})
final = skill("extract_answer", {"question": goal, "reasoning": reasoning})
answer(final)
final
