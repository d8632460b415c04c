# Perform one action and verify that the environment accepted it.
try:
    outcome = act(args["name"], args["args"])
    result = outcome["message"]
    if outcome["done"]:
        result = result + " (done)"
except ValueError as error:
    result = "failed: " + str(error)
result
