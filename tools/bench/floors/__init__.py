"""The floors of `make bench`: for each function, a functions-framework function that imports
the same packages and makes the same requests with the same client objects (the same RPCs
through supabase-py's postgrest client, the same Graph and ElevenLabs calls through httpx), with
no parsing beyond reading the fields it forwards, no validation, mapping or logging. What the
function costs beyond its floor is our own code's share (docs/PERFORMANCE.md)."""
