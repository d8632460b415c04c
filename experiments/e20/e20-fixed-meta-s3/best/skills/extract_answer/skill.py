# Ask for the final answer alone, on one line, and keep it short.
reply = llm(prompt(question=args["question"], reasoning=args["reasoning"]), max_tokens=32, temperature=0, stop=["\n"])
text = str(reply).strip()
if text == "":
    lines = [line.strip() for line in str(args["reasoning"]).split("\n") if line.strip() != ""]
    if len(lines) > 0:
        text = lines[-1]
text[:200]
