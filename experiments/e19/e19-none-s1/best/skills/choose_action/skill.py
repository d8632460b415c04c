# Ask the model for the next action as a flat choice (action, element ref,
# text), constrained to the actions that exist, then fill in the chosen
# action's own arguments from it: small models keep to a flat schema far
# better than to nested argument objects.
available = actions()
names = [a["name"] for a in available]
# The element refs the observation lists ("[12] button ..."): the model may
# only pick one of these.
refs = []
for line in args["observation"].split("\n"):
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
text = prompt(goal=args["goal"], observation=args["observation"], history=args["history"], actions=available, rules=rules, examples=examples)
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
        action_args[key] = choice["ref"]
    elif kind == "string":
        action_args[key] = choice["text"]
{"action": name, "args": action_args}
