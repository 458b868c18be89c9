"""calc: the calculator engine behind the book's calculators, chapter numbers and lab predictions.

Pure Python, standard library only (runs in CPython 3.10+ and in the browser under Pyodide).

    from calc import api
    api.run("memory", {"model": "llama-3.1-8b", "gpu": "h100-sxm"})["weights_bytes"]   # 16060522496

Modules: model (config.json -> shapes, parameter counts), registry (GPUs, models, API prices), memory, perf,
cost, api (validation + the reports), units (GB/GiB formatting). ``python -m calc --help`` for the CLI.
"""

__version__ = "0.1.0"
