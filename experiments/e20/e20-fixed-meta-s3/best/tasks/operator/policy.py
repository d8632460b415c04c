# The operator: observe, choose an action, act, until the environment is done
# or the step budget runs out. `goal` and `context` are given.
history = []
last = None
while not done():
    if budget()["steps_left"] < 1:
        log("stopping: no actions left")
        break
    # Element positions rarely matter here and cost tokens on every line.
    observation = observe(positions=False)
    choice = skill("choose_action", {"goal": goal, "observation": observation, "history": history[-6:]})
    outcome = skill("act", {"name": choice["action"], "args": choice["args"]})
    history.append(choice["action"] + " " + str(choice["args"]) + " -> " + outcome)
    last = outcome
last
