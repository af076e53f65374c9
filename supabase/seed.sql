-- Seed data for local stacks. Intentionally empty: leads come from signed test events
-- (`make send-test-event`), exactly as they come from Meta, so every local lead has a real trail.
select 1;
