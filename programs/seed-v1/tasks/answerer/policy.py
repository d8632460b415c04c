# The answerer: reason about the question, then extract a short answer and submit it.
# `goal` and `context` are given.
reasoning = skill("reason", {"question": goal})
final = skill("extract_answer", {"question": goal, "reasoning": reasoning})
answer(final)
final
