"""The operator's commands: ``make doctor``, ``make logs``, ``make send-test-event``, ``make sweep``
and ``make retry``, ``make calendly-subscribe`` (with the Calendly API client)."""
