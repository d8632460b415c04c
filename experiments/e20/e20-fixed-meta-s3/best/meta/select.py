# Parent selection: which archive nodes get children next generation.
# Inputs: candidates (list of {node, score, children, task_successes,
# task_scores}: success rate and mean benchmark score, partial progress
# included, per train task), count, seed (an integer for reproducible draws),
# generation, settings (meta/select.json, or None). Returns `count` node ids.
# The default mirrors DGM-H: a sigmoid around the mean of the top scores,
# times a penalty for nodes that already have many children. A meta agent
# tunes it through meta/select.json; values out of bounds are clamped here.
# The engine falls back to its configured policy if this script fails or
# answers nonsense.
import math

# Each setting: default, lowest, highest.
BOUNDS = {
    "top": [3, 1, 10],
    "sharpness": [10.0, 1.0, 50.0],
    "child_penalty": [8.0, 1.0, 32.0],
    "partial_weight": [0.0, 0.0, 1.0],
}
chosen_settings = {}
for key in BOUNDS:
    default, low, high = BOUNDS[key]
    value = default
    if isinstance(settings, dict):
        given = settings.get(key)
        if isinstance(given, int) or isinstance(given, float):
            value = given
    chosen_settings[key] = min(high, max(low, value))
top_count = int(chosen_settings["top"])
partial_weight = chosen_settings["partial_weight"]


def fitness(c):
    # The success rate, blended with partial progress (mean benchmark score
    # over train tasks) when partial_weight > 0; an auxiliary measure for
    # choosing parents only, never the run's official score.
    scores = list(c["task_scores"].values())
    if partial_weight <= 0 or len(scores) == 0:
        return c["score"]
    partial = sum(scores) / len(scores)
    return (1.0 - partial_weight) * c["score"] + partial_weight * partial


values = [fitness(c) for c in candidates]
ranked = sorted(values, reverse=True)
top = ranked[:top_count]
midpoint = sum(top) / len(top)

weights = []
for i in range(len(candidates)):
    c = candidates[i]
    sigmoid = 1.0 / (1.0 + math.exp(-chosen_settings["sharpness"] * (values[i] - midpoint)))
    penalty = math.exp(-((c["children"] / chosen_settings["child_penalty"]) ** 3))
    weights.append(sigmoid * penalty)
total = sum(weights)
if total <= 0:
    weights = [1.0 for c in candidates]
    total = float(len(candidates))

# A 64-bit linear congruential generator: the sandbox has no random module.
state = seed % 18446744073709551616
chosen = []
for i in range(count):
    state = (state * 6364136223846793005 + 1442695040888963407) % 18446744073709551616
    point = (state / 18446744073709551616.0) * total
    running = 0.0
    pick = candidates[len(candidates) - 1]["node"]
    for j in range(len(candidates)):
        running = running + weights[j]
        if point < running:
            pick = candidates[j]["node"]
            break
    chosen.append(pick)
chosen
