# The hyperagent: pick a task agent for the goal and delegate to it.
# `goal` is given; host functions: agents(), actions(), delegate(), llm(), prompt(), log().
available = agents()
names = [a["name"] for a in available]
action_names = [a["name"] for a in actions()]

# An environment whose only action is answering asks a question;
# anything else is operated step by step.
if action_names == ["answer"] and "answerer" in names:
    chosen = "answerer"
elif "operator" in names:
    chosen = "operator"
else:
    reply = llm(prompt(goal=goal, agents=available), max_tokens=16, temperature=0)
    chosen = names[0]
    for name in names:
        if name in reply:
            chosen = name
log("delegating to " + chosen)
result = delegate(chosen, goal, {"actions": action_names})
result
