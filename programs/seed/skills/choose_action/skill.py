# Ask the model for the next action as a flat choice (action, element ref,
# text), constrained to the actions that exist, then fill in the chosen
# action's own arguments from it: small models keep to a flat schema far
# better than to nested argument objects.
import json
import re

available = actions()
names = [a["name"] for a in available]
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


def read_weights():
    # The ranking file's numeric weights; anything else counts as none.
    try:
        ranking = json.loads(read_file(RANKING_FILE))
    except ValueError:
        return {}
    given = ranking.get("weights") if isinstance(ranking, dict) else None
    if not isinstance(given, dict):
        return {}
    found = {}
    for key in given:
        value = given[key]
        if (isinstance(value, int) or isinstance(value, float)) and not isinstance(value, bool):
            found[key] = value
    return found


def element_ref(line):
    # The [ref] number an element line starts with, or None.
    stripped = line.strip()
    if stripped.startswith("[") and "]" in stripped and stripped[1:stripped.index("]")].isdigit():
        return int(stripped[1:stripped.index("]")])
    return None


def ranked_page(goal, observation, weights):
    # The observation with its element lines in ranked order, renumbered
    # from 1 in the slots the page's element lines held (other lines stay
    # where they were), and the page's ref of each shown number.
    lines = observation.split("\n")
    elements = [l.strip() for l in lines if element_ref(l) is not None]
    if len(weights) == 0 or len(elements) == 0:
        return [observation, {}]
    scored = []
    for position in range(len(elements)):
        score = sum([weights.get(f, 0) for f in element_features(goal, elements[position])])
        scored.append([-score, position, elements[position]])
    order = [item[2] for item in sorted(scored)]
    page_ref = {}
    shown = []
    number = 0
    for line in lines:
        if element_ref(line) is None:
            shown.append(line)
            continue
        number += 1
        chosen = order[number - 1]
        page_ref[number] = element_ref(chosen)
        shown.append("[" + str(number) + "]" + chosen[chosen.index("]") + 1:])
    return ["\n".join(shown), page_ref]


def swap_refs(text, before, after, shown_of):
    # Every `before` + a number + `after` in text, the number rewritten.
    out = ""
    rest = text
    while rest.find(before) >= 0:
        start = rest.find(before) + len(before)
        end = start
        while end < len(rest) and rest[end].isdigit():
            end += 1
        if end == start or not rest[end:].startswith(after):
            out = out + rest[:start]
            rest = rest[start:]
            continue
        out = out + rest[:start] + str(shown_of.get(int(rest[start:end]), "?")) + after
        rest = rest[end + len(after):]
    return out + rest


def shown_history(history, page_ref):
    # Earlier actions name page refs; the model sees shown numbers, so each
    # ref is rewritten as the number this page shows it under ("?" when this
    # page does not list it).
    if len(page_ref) == 0:
        return history
    shown_of = {}
    for number in page_ref:
        shown_of[page_ref[number]] = number
    return [swap_refs(swap_refs(str(step), "[", "]", shown_of), "'ref': ", "", shown_of) for step in history]


ranked = ranked_page(args["goal"], args["observation"], read_weights())
observation = ranked[0]
page_ref = ranked[1]
# The model may only pick one of the refs shown.
refs = []
for line in observation.split("\n"):
    if element_ref(line) is not None:
        refs.append(element_ref(line))
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
text = prompt(goal=args["goal"], observation=observation, history=shown_history(args["history"], page_ref), actions=available, rules=rules, examples=examples)
choice = llm(text, schema=schema, max_tokens=96, temperature=0)
# From here on, refs are the page's own.
choice["ref"] = page_ref.get(choice["ref"], choice["ref"])
name = choice["action"]
if name not in names:
    raise ValueError("the model chose an unknown action: " + str(name))
spec = available[names.index(name)]
properties = spec["parameters"].get("properties", {})
action_args = {}
for key in properties:
    kind = properties[key].get("type", "string")
    if kind == "integer":
        action_args[key] = choice["ref"]
    elif kind == "string":
        action_args[key] = choice["text"]
{"action": name, "args": action_args}
