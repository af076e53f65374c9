-- The sweeps' bearer token is stored in Supabase Vault through this function, called by `make
-- deploy` through the database API with the token in the request body (issue 16, item 6). It
-- used to be a literal inside the deploy's dollar-quoted DO block, and SQL text can surface in
-- logs and query statistics (pg_stat_statements); a function argument sent over the API does
-- not. Only service_role may call it; it runs as its owner, who may write Vault.

create function public.internal_token_store(p_token text)
returns void
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_id uuid;
begin
    if p_token is null or length(p_token) < 16 or p_token ~ '[\s,]' then
        raise exception 'not a usable INTERNAL_TOKEN (16 characters at least, no spaces or commas)'
            using errcode = '22023';
    end if;
    select s.id into v_id from vault.secrets s where s.name = 'speed_to_lead_internal_token';
    if v_id is null then
        perform vault.create_secret(
            p_token, 'speed_to_lead_internal_token',
            'INTERNAL_TOKEN: the bearer token of the functions'' sweeps (make deploy)');
    else
        perform vault.update_secret(v_id, p_token);
    end if;
end
$$;

revoke all on function public.internal_token_store(text) from public, anon, authenticated;
grant execute on function public.internal_token_store(text) to service_role;
