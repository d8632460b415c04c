# Ask the model for the next action as a flat choice (action, element ref,
# text), constrained to the actions that exist, then fill in the chosen
# action's own arguments from it: small models keep to a flat schema far
# better than to nested argument objects.
available = actions()
names = [a["name"] for a in available]
import json
import re

# Element ranking: weights per element feature, kept in the program's own
# file (mined from successful episodes by the meta agent; empty = the page's
# order). A small task model tends to pick the first element listed, so the
# elements are listed best-ranked first and renumbered from 1; the chosen
# number is mapped back to the page's own ref. The features must match the
# meta agent's `element_features` (meta/improve.py), which mines them.
RANKING_FILE = "skills/choose_action/ranking.json"


def element_features(goal, line):
    # Generic features of one element line ('[4] button "yes" ...') against
    # the goal: its tag, whether its text is what the goal quotes (whole or
    # in part), shares a word with the goal, or is empty; an empty field.
    rest = line[line.index("]") + 1:].strip()
    tag = rest.split(" ")[0] if rest else ""
    features = ["tag:" + tag]
    parts = rest.split('"')
    text = parts[1].strip().lower() if len(parts) >= 3 else ""
    phrases = [q.strip().lower() for q in re.findall(r'"([^"]+)"', goal) if q.strip() != ""]
    if text == "":
        features.append("no_text")
    elif text in phrases:
        features.append("quoted")
    elif any([p in text or text in p for p in phrases]):
        features.append("quoted_part")
    goal_words = re.findall(r"[a-z0-9]+", goal.lower())
    if any([len(w) > 2 and w in goal_words for w in re.findall(r"[a-z0-9]+", text)]):
        features.append("goal_word")
    if 'value=""' in rest:
        features.append("empty_field")
    return features


try:
    weights = json.loads(read_file(RANKING_FILE)).get("weights", {})
except ValueError:
    weights = {}
# The element lines ("[12] button ..."), in the page's order, and the rest.
header = []
elements = []
for line in args["observation"].split("\n"):
    stripped = line.strip()
    if stripped.startswith("[") and "]" in stripped and stripped[1:stripped.index("]")].isdigit():
        elements.append(stripped)
    elif stripped != "":
        header.append(line)
observation = args["observation"]
page_ref = {}
if len(weights) > 0 and len(elements) > 0:
    scored = []
    for position in range(len(elements)):
        line = elements[position]
        score = sum([weights.get(f, 0) for f in element_features(args["goal"], line)])
        scored.append([-score, position, line])
    ranked = [item[2] for item in sorted(scored)]
    shown = []
    for number in range(1, len(ranked) + 1):
        line = ranked[number - 1]
        page_ref[number] = int(line[1:line.index("]")])
        shown.append("[" + str(number) + "]" + line[line.index("]") + 1:])
    observation = "\n".join(header + shown) + "\n"
# The model may only pick one of the refs shown.
refs = []
for line in observation.split("\n"):
    stripped = line.strip()
    if stripped.startswith("[") and "]" in stripped:
        number = stripped[1:stripped.index("]")]
        if number.isdigit():
            refs.append(int(number))
if not refs:
    refs = [0]
schema = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": names},
        "ref": {"type": "integer", "enum": refs},
        "text": {"type": "string", "maxLength": 200},
    },
    "required": ["action", "ref", "text"],
}
# Rules this program has learnt, and a solved example of the most similar
# goal (both kept in the program's own files; empty until added).
rules = read_file("skills/choose_action/rules.md").strip()
examples = recall(args["goal"], 1)
text = prompt(goal=args["goal"], observation=observation, history=args["history"], actions=available, rules=rules, examples=examples)
choice = llm(text, schema=schema, max_tokens=96, temperature=0)
name = choice["action"]
if name not in names:
    raise ValueError("the model chose an unknown action: " + str(name))
spec = available[names.index(name)]
properties = spec["parameters"].get("properties", {})
action_args = {}
for key in properties:
    kind = properties[key].get("type", "string")
    if kind == "integer":
        action_args[key] = page_ref.get(choice["ref"], choice["ref"])
    elif kind == "string":
        action_args[key] = choice["text"]
{"action": name, "args": action_args}
