"""The outside world, faked at the HTTP boundary: the shared fake base (``fake_api``), the Graph,
Calendly and ElevenLabs fakes, and builders of payloads shaped exactly like the providers'."""
