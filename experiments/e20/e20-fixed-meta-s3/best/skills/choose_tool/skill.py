# Ask the model whether to call one of the tools offered, and with what, as a
# flat choice constrained to the tools that exist (or "none").
offered = args["tools"]
names = [t["name"] for t in offered] + ["none"]
schema = {
    "type": "object",
    "properties": {
        "tool": {"type": "string", "enum": names},
        "input": {"type": "string", "maxLength": 500},
    },
    "required": ["tool", "input"],
}
text = prompt(question=args["question"], notes=args["notes"], tools=offered)
choice = llm(text, schema=schema, max_tokens=160, temperature=0)
name = "none"
given = ""
if isinstance(choice, dict):
    name = str(choice.get("tool", "none"))
    given = str(choice.get("input", ""))
if name not in names:
    name = "none"
{"tool": name, "input": given}
