"""place_call's modules: placing calls through ElevenLabs, recording and reading their outcomes."""
