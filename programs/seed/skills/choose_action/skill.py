# Ask the model for the next action, constrained to the actions that exist.
available = actions()
names = [a["name"] for a in available]
schema = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": names},
        "args": {"type": "object"},
    },
    "required": ["action", "args"],
}
text = prompt(goal=args["goal"], observation=args["observation"], history=args["history"], actions=available)
choice = llm(text, schema=schema, max_tokens=128, temperature=0)
if choice["action"] not in names:
    raise ValueError("the model chose an unknown action: " + str(choice["action"]))
choice
