"""`make deploy` (tools/deploy/cli.py): each function live as its own Google Cloud Functions
(2nd gen) HTTP function, from its bundle (tools/bundle.py), with only the variables it reads.

- ``needs``: what a function needs, read from its code (entry point, routes, packages, variables);
- ``settings``: the variables, the GCP project and region, the Cloud Functions settings;
- ``plan``: the commands and generated files, as data (a dry run and a real run share it);
- ``preflight``: every problem at once, before anything changes;
- ``cli``: prints and runs the plan.
"""
