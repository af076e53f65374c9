"""`make deploy` (tools/deploy/cli.py): each function live as its own Google Cloud Functions
(2nd gen) HTTP function, from its bundle (tools/build/bundle.py), with only the variables it reads.

- ``settings``: the variables (each function's declared by its settings class,
  tools/build/functions.py), the GCP project and region, the Cloud Functions settings;
- ``plan``: the commands and generated files, as data (a dry run and a real run share it);
- ``preflight``: every problem at once, before anything changes;
- ``cli``: prints and runs the plan.
"""
