"""Verdicts of webarena-verified's own evaluator, for the Rust cross-check.

Reads one JSON object on stdin:
  {"package_dir": "<dir holding the webarena_verified package>",
   "cases": [{"name", "task", "site_urls", "answer"}],
   "tokenize": ["text", ...]}
and prints one JSON object:
  {"scores": {name: score}, "tokens": {text: [token, ...]} | null}

Each case's task is a webarena-verified task record whose only evaluator is
an AgentResponseEvaluator; it is scored with the package's own
AgentResponseEvaluator, offline (no network trace is needed for it).
`tokens` holds NLTK's Treebank word tokenization (the tokenizer WebArena's
original must_include uses) when nltk is importable, else null.

Exit status 3 with a reason on stderr when the package or its dependencies
cannot be imported, so that the Rust test can skip.
"""

import json
import logging
import sys
from pathlib import Path


def main() -> int:
    request = json.load(sys.stdin)
    # The package logs evaluator exceptions; keep stdout for the answer.
    logging.disable(logging.CRITICAL)
    sys.path.insert(0, request["package_dir"])
    try:
        from webarena_verified.core.evaluation.evaluators import AgentResponseEvaluator
        from webarena_verified.types.config import EnvironmentConfig, WebArenaVerifiedConfig
        from webarena_verified.types.eval import TaskEvalContext
        from webarena_verified.types.task import WebArenaSite, WebArenaVerifiedTask
        from webarena_verified.types.tracing import NetworkTrace
    except ImportError as error:  # a missing dependency
        print(f"cannot import webarena_verified: {error}", file=sys.stderr)
        return 3

    scores = {}
    for case in request["cases"]:
        task = WebArenaVerifiedTask.model_validate(case["task"])
        environments = {
            WebArenaSite(site): EnvironmentConfig(urls=[url]) for site, url in case["site_urls"].items()
        }
        config = WebArenaVerifiedConfig(environments=environments)
        context = TaskEvalContext(
            task=task,
            agent_response_raw=case["answer"],
            # The agent-response evaluator never reads the trace.
            network_trace=NetworkTrace.model_construct(is_playwright=False, src_file=Path("<none>"), events=()),
            config=config,
        )
        result = AgentResponseEvaluator().evaluate(context=context, config=task.eval[0])
        scores[case["name"]] = result.score

    tokens = None
    try:
        from nltk.tokenize import NLTKWordTokenizer
    except ImportError:
        pass
    else:
        tokenizer = NLTKWordTokenizer()
        tokens = {text: tokenizer.tokenize(text) for text in request.get("tokenize", [])}

    json.dump({"scores": scores, "tokens": tokens}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
