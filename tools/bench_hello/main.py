"""The baseline of `make bench`: a bare functions-framework HTTP function that answers "ok".

Served exactly as meta_webhook is (``functions-framework --target hello --source
tools/bench_hello/main.py``), so the difference between the two is the webhook's own cost.
"""

import functions_framework


@functions_framework.http
def hello(request):
    return "ok"
