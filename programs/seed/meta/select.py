# Parent selection: which archive nodes get children next generation.
# Inputs: candidates (list of {node, score, children, task_successes,
# task_scores}: success rate and mean benchmark score, partial progress
# included, per train task), count, seed (an integer for reproducible draws),
# generation. Returns `count` node ids.
# The default mirrors DGM-H: a sigmoid around the mean of the top 3 scores,
# times a penalty for nodes that already have many children. The engine falls
# back to its configured policy if this script fails or answers nonsense.
import math

scores = sorted([c["score"] for c in candidates], reverse=True)
top = scores[:3]
midpoint = sum(top) / len(top)

weights = []
for c in candidates:
    sigmoid = 1.0 / (1.0 + math.exp(-10.0 * (c["score"] - midpoint)))
    penalty = math.exp(-((c["children"] / 8.0) ** 3))
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
