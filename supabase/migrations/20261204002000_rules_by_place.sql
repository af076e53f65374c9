-- Calling rules by place (issue 15, item 4). A call is allowed when the local time, in every time
-- zone the number may be in, is within the effective window of that local day: the intersection
-- of CALL_HOURS_START–CALL_HOURS_END and the windows of every place the number belongs to, and
-- the day is not a holiday of those places' calendars listed in CALL_HOLIDAYS. docs/LAWFUL_CALLING.md
-- names the statute and the date behind each seeded rule.
--
-- * call_place_rules: a window per ISO weekday ("1" Monday … "7" Sunday; null: no calls that
--   day) and a per-person cap in any 24 hours, per place: a country (US, ES, with its calling
--   code) or an ISO 3166-2 subdivision (US-FL). Seeded here; the operator may change a row or add
--   one (a migration never overwrites an existing row).
-- * call_holidays: the days of each calendar (US federal with their observed days, Spain's
--   national holidays), seeded for 2026–2028; `make doctor` warns when a calendar in use runs
--   out. The operator adds days (regional holidays) as rows.
-- * nanp_area_codes: the places of each +1 area code, from phonenumbers' geocoder
--   (tools/build/nanp.py; a test keeps the seed equal to it). An area code naming several
--   states belongs to each: the intersection of their windows applies.
-- * phone_places: the places of a number (+1: its area code's, else US; others: the country
--   whose calling code it starts with).
-- * call_window gains the places (extended, not a second window function): the same answer
--   {allowed, next_at, zones, hours, local} plus the windows of each zone, the places and the
--   rules (with their source) that shaped them; call_claim passes the number's places (p_rules
--   place_rules: CALL_PLACE_RULES), takes the smallest per-person cap of the places, and keeps
--   all of it in calls.allowed_by.
--
-- call_claim is the text of 20261204001600_decision_reasons.sql with, after the phone check, the
-- places of the number, the do-not-call list (20261204001900_do_not_contact.sql: it replaces
-- the person do_not_call check) and consent (20261204001800_consent.sql: calls.consent written);
-- the cap lowered to the places' own, and call_window given the places. These three migrations
-- are applied together: the claim is written once, here.

-- A rule's windows: every ISO weekday "1" to "7", each null (no calls) or ["HH:MM", "HH:MM"],
-- start before end (end may be 24:00).
create function public.call_windows_valid(p_windows jsonb)
returns boolean
language sql
immutable
set search_path = ''
as $$
    select jsonb_typeof(p_windows) = 'object'
       and p_windows ?& array['1', '2', '3', '4', '5', '6', '7']
       and (select count(*) from jsonb_object_keys(p_windows)) = 7
       and not exists (
           select from jsonb_each(p_windows) d
           where jsonb_typeof(d.value) <> 'null'
             and not (jsonb_typeof(d.value) = 'array'
                      and jsonb_array_length(d.value) = 2
                      and coalesce(d.value ->> 0, '') ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'
                      and coalesce(d.value ->> 1, '') ~ '^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$'
                      and (d.value ->> 0)::time < (d.value ->> 1)::time));
$$;

revoke all on function public.call_windows_valid(jsonb) from public, anon, authenticated;
grant execute on function public.call_windows_valid(jsonb) to service_role;

create table public.call_place_rules (
    place text primary key constraint call_place_rules_place_shape
        check (place ~ '^[A-Z]{2}(-[A-Z0-9]{1,3})?$'),
    calling_code text constraint call_place_rules_calling_code_shape
        check (calling_code ~ '^\+[1-9][0-9]{0,3}$'),
    windows jsonb not null constraint call_place_rules_windows_shape
        check (public.call_windows_valid(windows)),
    max_per_person_per_day integer constraint call_place_rules_cap_positive
        check (max_per_person_per_day > 0),
    source text not null,
    updated_at timestamptz not null default now()
);

comment on table public.call_place_rules is
    'Calling rules by place: windows per ISO weekday ("1" Monday … "7" Sunday: ["HH:MM","HH:MM"] local time, or null: no calls that day) and a per-person cap in any 24 hours; source names the statute and when it was read. Overridable: edit a row, or add one.';

create table public.call_holidays (
    calendar text not null,
    day date not null,
    name text not null,
    primary key (calendar, day)
);

comment on table public.call_holidays is
    'Days without calls, per calendar (a place: US, ES, US-LA …), applied when the calendar is listed in CALL_HOLIDAYS and the number belongs to that place. Add rows for regional holidays and future years.';

create table public.nanp_area_codes (
    npa text not null constraint nanp_area_codes_npa_shape check (npa ~ '^[2-9][0-9]{2}$'),
    place text not null,
    primary key (npa, place)
);

comment on table public.nanp_area_codes is
    'The places of each +1 area code (from phonenumbers'' geocoder, tools/build/nanp.py): US-FL, CA-ON, JM …';

alter table public.call_place_rules enable row level security;
alter table public.call_holidays enable row level security;
alter table public.nanp_area_codes enable row level security;
revoke all on public.call_place_rules, public.call_holidays, public.nanp_area_codes
    from public, anon, authenticated;
grant select on public.call_place_rules, public.call_holidays, public.nanp_area_codes
    to service_role;

insert into public.call_place_rules (place, calling_code, windows, max_per_person_per_day, source)
values
    ('US', '+1',
     '{"1":["08:00","21:00"],"2":["08:00","21:00"],"3":["08:00","21:00"],"4":["08:00","21:00"],"5":["08:00","21:00"],"6":["08:00","21:00"],"7":["08:00","21:00"]}',
     null,
     '47 CFR 64.1200(c)(1) (TCPA): no telephone solicitation before 8:00 a.m. or after 9:00 p.m. local time at the called party''s location. Read 2026-12-04.'),
    ('US-FL', null,
     '{"1":["08:00","20:00"],"2":["08:00","20:00"],"3":["08:00","20:00"],"4":["08:00","20:00"],"5":["08:00","20:00"],"6":["08:00","20:00"],"7":["08:00","20:00"]}',
     3,
     'Fla. Stat. § 501.616(6)(a)-(b), as amended by SB 1120 (in force 2021-07-01): calls 8:00 a.m.-8:00 p.m. the called person''s time, at most 3 calls to a person in 24 hours on the same subject. Read 2026-12-04.'),
    ('US-OK', null,
     '{"1":["08:00","20:00"],"2":["08:00","20:00"],"3":["08:00","20:00"],"4":["08:00","20:00"],"5":["08:00","20:00"],"6":["08:00","20:00"],"7":["08:00","20:00"]}',
     3,
     'Okla. Stat. tit. 15, § 775C.4 (Telephone Solicitation Act of 2022, in force 2022-11-01): 8:00 a.m.-8:00 p.m., at most 3 calls to a person in 24 hours on the same subject. Read 2026-12-04.'),
    ('US-MD', null,
     '{"1":["08:00","20:00"],"2":["08:00","20:00"],"3":["08:00","20:00"],"4":["08:00","20:00"],"5":["08:00","20:00"],"6":["08:00","20:00"],"7":["08:00","20:00"]}',
     3,
     'Md. Code, Com. Law § 14-4503 (Stop the Spam Calls Act of 2023, in force 2024-01-01): 8:00 a.m.-8:00 p.m., at most 3 calls to a person in 24 hours on the same subject. Read 2026-12-04.'),
    ('US-LA', null,
     '{"1":["08:00","20:00"],"2":["08:00","20:00"],"3":["08:00","20:00"],"4":["08:00","20:00"],"5":["08:00","20:00"],"6":["08:00","20:00"],"7":null}',
     null,
     'La. R.S. 45:811(2)-(3): automatic dialing and announcing devices only 8:00 a.m.-8:00 p.m. Monday to Saturday, never on Sundays nor state holidays (add Louisiana''s holidays as calendar US-LA). Read 2026-12-04.'),
    ('ES', '+34',
     '{"1":["09:00","21:00"],"2":["09:00","21:00"],"3":["09:00","21:00"],"4":["09:00","21:00"],"5":["09:00","21:00"],"6":null,"7":null}',
     null,
     'Real Decreto Legislativo 1/2007 (TRLGDCU) art. 96.2, as amended by Ley 4/2022 (in force 2022-03-02): no commercial calls before 9:00 nor after 21:00, nor on holidays or weekends. Read 2026-12-04.')
on conflict (place) do nothing;

-- US: 5 U.S.C. § 6103(a) federal holidays, with the observed Friday or Monday of one that falls
-- on a weekend. ES: the national holidays of the yearly list (Estatuto de los Trabajadores art.
-- 37.2, Real Decreto 2001/1983 art. 45); the regions' own days are the operator's to add.
insert into public.call_holidays (calendar, day, name) values
    ('ES', '2026-01-01', 'Año Nuevo'),
    ('ES', '2026-01-06', 'Epifanía del Señor'),
    ('ES', '2026-04-03', 'Viernes Santo'),
    ('ES', '2026-05-01', 'Fiesta del Trabajo'),
    ('ES', '2026-08-15', 'Asunción de la Virgen'),
    ('ES', '2026-10-12', 'Fiesta Nacional de España'),
    ('ES', '2026-11-01', 'Todos los Santos'),
    ('ES', '2026-12-06', 'Día de la Constitución Española'),
    ('ES', '2026-12-08', 'Inmaculada Concepción'),
    ('ES', '2026-12-25', 'Natividad del Señor'),
    ('ES', '2027-01-01', 'Año Nuevo'),
    ('ES', '2027-01-06', 'Epifanía del Señor'),
    ('ES', '2027-03-26', 'Viernes Santo'),
    ('ES', '2027-05-01', 'Fiesta del Trabajo'),
    ('ES', '2027-08-15', 'Asunción de la Virgen'),
    ('ES', '2027-10-12', 'Fiesta Nacional de España'),
    ('ES', '2027-11-01', 'Todos los Santos'),
    ('ES', '2027-12-06', 'Día de la Constitución Española'),
    ('ES', '2027-12-08', 'Inmaculada Concepción'),
    ('ES', '2027-12-25', 'Natividad del Señor'),
    ('ES', '2028-01-01', 'Año Nuevo'),
    ('ES', '2028-01-06', 'Epifanía del Señor'),
    ('ES', '2028-04-14', 'Viernes Santo'),
    ('ES', '2028-05-01', 'Fiesta del Trabajo'),
    ('ES', '2028-08-15', 'Asunción de la Virgen'),
    ('ES', '2028-10-12', 'Fiesta Nacional de España'),
    ('ES', '2028-11-01', 'Todos los Santos'),
    ('ES', '2028-12-06', 'Día de la Constitución Española'),
    ('ES', '2028-12-08', 'Inmaculada Concepción'),
    ('ES', '2028-12-25', 'Natividad del Señor'),
    ('US', '2026-01-01', 'New Year''s Day'),
    ('US', '2026-01-19', 'Birthday of Martin Luther King, Jr.'),
    ('US', '2026-02-16', 'Washington''s Birthday'),
    ('US', '2026-05-25', 'Memorial Day'),
    ('US', '2026-06-19', 'Juneteenth National Independence Day'),
    ('US', '2026-07-03', 'Independence Day (observed)'),
    ('US', '2026-07-04', 'Independence Day'),
    ('US', '2026-09-07', 'Labor Day'),
    ('US', '2026-10-12', 'Columbus Day'),
    ('US', '2026-11-11', 'Veterans Day'),
    ('US', '2026-11-26', 'Thanksgiving Day'),
    ('US', '2026-12-25', 'Christmas Day'),
    ('US', '2027-01-01', 'New Year''s Day'),
    ('US', '2027-01-18', 'Birthday of Martin Luther King, Jr.'),
    ('US', '2027-02-15', 'Washington''s Birthday'),
    ('US', '2027-05-31', 'Memorial Day'),
    ('US', '2027-06-18', 'Juneteenth National Independence Day (observed)'),
    ('US', '2027-06-19', 'Juneteenth National Independence Day'),
    ('US', '2027-07-04', 'Independence Day'),
    ('US', '2027-07-05', 'Independence Day (observed)'),
    ('US', '2027-09-06', 'Labor Day'),
    ('US', '2027-10-11', 'Columbus Day'),
    ('US', '2027-11-11', 'Veterans Day'),
    ('US', '2027-11-25', 'Thanksgiving Day'),
    ('US', '2027-12-24', 'Christmas Day (observed)'),
    ('US', '2027-12-25', 'Christmas Day'),
    ('US', '2027-12-31', 'New Year''s Day (observed)'),
    ('US', '2028-01-01', 'New Year''s Day'),
    ('US', '2028-01-17', 'Birthday of Martin Luther King, Jr.'),
    ('US', '2028-02-21', 'Washington''s Birthday'),
    ('US', '2028-05-29', 'Memorial Day'),
    ('US', '2028-06-19', 'Juneteenth National Independence Day'),
    ('US', '2028-07-04', 'Independence Day'),
    ('US', '2028-09-04', 'Labor Day'),
    ('US', '2028-10-09', 'Columbus Day'),
    ('US', '2028-11-10', 'Veterans Day (observed)'),
    ('US', '2028-11-11', 'Veterans Day'),
    ('US', '2028-11-23', 'Thanksgiving Day'),
    ('US', '2028-12-25', 'Christmas Day')
on conflict (calendar, day) do nothing;

-- The seed of tools/build/nanp.py (phonenumbers 9.0.43 geocoder).
insert into public.nanp_area_codes (npa, place) values
    ('201', 'US-NJ'), ('201', 'US-NY'), ('202', 'US-DC'), ('203', 'US-CT'), ('204', 'CA-MB'), ('205', 'US-AL'),
    ('206', 'US-WA'), ('207', 'US-ME'), ('208', 'US-ID'), ('209', 'US-CA'), ('210', 'US-TX'), ('212', 'US-NY'),
    ('213', 'US-CA'), ('214', 'US-TX'), ('215', 'US-PA'), ('216', 'US-OH'), ('217', 'US-IL'), ('218', 'US-MN'),
    ('219', 'US-IN'), ('220', 'US-OH'), ('223', 'US-PA'), ('224', 'US-IL'), ('225', 'US-LA'), ('226', 'CA-ON'),
    ('227', 'US-MD'), ('228', 'US-MS'), ('229', 'US-GA'), ('231', 'US-MI'), ('234', 'US-OH'), ('235', 'US-MO'),
    ('236', 'CA-BC'), ('239', 'US-FL'), ('240', 'US-MD'), ('242', 'BS'), ('248', 'US-MI'), ('249', 'CA-ON'),
    ('250', 'CA-BC'), ('251', 'US-AL'), ('252', 'US-NC'), ('253', 'US-WA'), ('254', 'US-TX'), ('256', 'US-AL'),
    ('257', 'CA-BC'), ('260', 'US-IN'), ('262', 'US-WI'), ('263', 'CA-QC'), ('267', 'US-PA'), ('269', 'US-MI'),
    ('270', 'US-KY'), ('272', 'US-PA'), ('273', 'CA-QC'), ('274', 'US-WI'), ('276', 'US-VA'), ('279', 'US-CA'),
    ('281', 'US-TX'), ('283', 'US-OH'), ('289', 'CA-ON'), ('301', 'US-MD'), ('302', 'US-DE'), ('303', 'US-CO'),
    ('304', 'US-WV'), ('305', 'US-FL'), ('306', 'CA-SK'), ('307', 'US-WY'), ('308', 'US-NE'), ('309', 'US-IL'),
    ('310', 'US-CA'), ('312', 'US-IL'), ('313', 'US-MI'), ('314', 'US-MO'), ('315', 'US-NY'), ('316', 'US-KS'),
    ('317', 'US-IN'), ('318', 'US-LA'), ('319', 'US-IA'), ('320', 'US-MN'), ('321', 'US-FL'), ('323', 'US-CA'),
    ('324', 'US-FL'), ('325', 'US-TX'), ('326', 'US-OH'), ('327', 'US-AR'), ('329', 'US-NY'), ('330', 'US-OH'),
    ('331', 'US-IL'), ('332', 'US-NY'), ('334', 'US-AL'), ('336', 'US-NC'), ('337', 'US-LA'), ('339', 'US-MA'),
    ('340', 'VI'), ('341', 'US-CA'), ('343', 'CA-ON'), ('345', 'KY'), ('346', 'US-TX'), ('347', 'US-NY'),
    ('350', 'US-CA'), ('351', 'US-MA'), ('352', 'US-FL'), ('353', 'US-WI'), ('354', 'CA-QC'), ('360', 'US-WA'),
    ('361', 'US-TX'), ('363', 'US-NY'), ('364', 'US-KY'), ('365', 'CA-ON'), ('367', 'CA-QC'), ('368', 'CA-AB'),
    ('369', 'US-CA'), ('380', 'US-OH'), ('382', 'CA-ON'), ('385', 'US-UT'), ('386', 'US-FL'), ('401', 'US-RI'),
    ('402', 'US-NE'), ('403', 'CA-AB'), ('404', 'US-GA'), ('405', 'US-OK'), ('406', 'US-MT'), ('407', 'US-FL'),
    ('408', 'US-CA'), ('409', 'US-TX'), ('410', 'US-MD'), ('412', 'US-PA'), ('413', 'US-MA'), ('414', 'US-WI'),
    ('415', 'US-CA'), ('416', 'CA-ON'), ('417', 'US-MO'), ('418', 'CA-QC'), ('419', 'US-OH'), ('423', 'US-TN'),
    ('424', 'US-CA'), ('425', 'US-WA'), ('428', 'CA-NB'), ('430', 'US-TX'), ('431', 'CA-MB'), ('432', 'US-TX'),
    ('434', 'US-VA'), ('435', 'US-UT'), ('437', 'CA-ON'), ('438', 'CA-QC'), ('440', 'US-OH'), ('442', 'US-CA'),
    ('443', 'US-MD'), ('445', 'US-PA'), ('447', 'US-IL'), ('448', 'US-FL'), ('450', 'CA-QC'), ('458', 'US-OR'),
    ('463', 'US-IN'), ('464', 'US-IL'), ('468', 'CA-QC'), ('469', 'US-TX'), ('470', 'US-GA'), ('472', 'US-NC'),
    ('474', 'CA-SK'), ('475', 'US-CT'), ('478', 'US-GA'), ('479', 'US-AR'), ('480', 'US-AZ'), ('484', 'US-PA'),
    ('501', 'US-AR'), ('502', 'US-KY'), ('503', 'US-OR'), ('504', 'US-LA'), ('505', 'US-NM'), ('506', 'CA-NB'),
    ('507', 'US-MN'), ('508', 'US-MA'), ('509', 'US-WA'), ('510', 'US-CA'), ('512', 'US-TX'), ('513', 'US-OH'),
    ('514', 'CA-QC'), ('515', 'US-IA'), ('516', 'US-NY'), ('517', 'US-MI'), ('518', 'US-NY'), ('519', 'CA-ON'),
    ('520', 'US-AZ'), ('530', 'US-CA'), ('531', 'US-NE'), ('534', 'US-WI'), ('539', 'US-OK'), ('540', 'US-VA'),
    ('541', 'US-OR'), ('548', 'CA-ON'), ('551', 'US-NJ'), ('557', 'US-MO'), ('559', 'US-CA'), ('561', 'US-FL'),
    ('562', 'US-CA'), ('563', 'US-IA'), ('564', 'US-WA'), ('567', 'US-OH'), ('570', 'US-PA'), ('571', 'US-VA'),
    ('572', 'US-OK'), ('573', 'US-MO'), ('574', 'US-IN'), ('575', 'US-NM'), ('579', 'CA-QC'), ('580', 'US-OK'),
    ('581', 'CA-QC'), ('582', 'US-PA'), ('584', 'CA-MB'), ('585', 'US-NY'), ('586', 'US-MI'), ('587', 'CA-AB'),
    ('601', 'US-MS'), ('602', 'US-AZ'), ('603', 'US-NH'), ('604', 'CA-BC'), ('605', 'US-SD'), ('606', 'US-KY'),
    ('607', 'US-NY'), ('608', 'US-WI'), ('609', 'US-NJ'), ('610', 'US-PA'), ('612', 'US-MN'), ('613', 'CA-ON'),
    ('614', 'US-OH'), ('615', 'US-TN'), ('616', 'US-MI'), ('617', 'US-MA'), ('618', 'US-IL'), ('619', 'US-CA'),
    ('620', 'US-KS'), ('623', 'US-AZ'), ('626', 'US-CA'), ('628', 'US-CA'), ('629', 'US-TN'), ('630', 'US-IL'),
    ('631', 'US-NY'), ('636', 'US-MO'), ('639', 'CA-SK'), ('640', 'US-NJ'), ('641', 'US-IA'), ('645', 'US-FL'),
    ('646', 'US-NY'), ('647', 'CA-ON'), ('649', 'TC'), ('650', 'US-CA'), ('651', 'US-MN'), ('656', 'US-FL'),
    ('657', 'US-CA'), ('659', 'US-AL'), ('660', 'US-MO'), ('661', 'US-CA'), ('662', 'US-MS'), ('667', 'US-MD'),
    ('669', 'US-CA'), ('671', 'GU'), ('672', 'CA-BC'), ('678', 'US-GA'), ('680', 'US-NY'), ('681', 'US-WV'),
    ('682', 'US-TX'), ('683', 'CA-ON'), ('686', 'US-VA'), ('689', 'US-FL'), ('701', 'US-ND'), ('702', 'US-NV'),
    ('703', 'US-VA'), ('704', 'US-NC'), ('705', 'CA-ON'), ('706', 'US-GA'), ('707', 'US-CA'), ('708', 'US-IL'),
    ('709', 'CA-NL'), ('712', 'US-IA'), ('713', 'US-TX'), ('714', 'US-CA'), ('715', 'US-WI'), ('716', 'US-NY'),
    ('717', 'US-PA'), ('718', 'US-NY'), ('719', 'US-CO'), ('720', 'US-CO'), ('724', 'US-PA'), ('725', 'US-NV'),
    ('726', 'US-TX'), ('727', 'US-FL'), ('728', 'US-FL'), ('730', 'US-IL'), ('731', 'US-TN'), ('732', 'US-NJ'),
    ('734', 'US-MI'), ('737', 'US-TX'), ('738', 'US-CA'), ('740', 'US-OH'), ('742', 'CA-ON'), ('743', 'US-NC'),
    ('747', 'US-CA'), ('748', 'US-CO'), ('753', 'CA-ON'), ('754', 'US-FL'), ('757', 'US-VA'), ('760', 'US-CA'),
    ('762', 'US-GA'), ('763', 'US-MN'), ('765', 'US-IN'), ('769', 'US-MS'), ('770', 'US-GA'), ('771', 'US-DC'),
    ('772', 'US-FL'), ('773', 'US-IL'), ('774', 'US-MA'), ('775', 'US-NV'), ('778', 'CA-BC'), ('779', 'US-IL'),
    ('780', 'CA-AB'), ('781', 'US-MA'), ('782', 'CA-NS'), ('782', 'CA-PE'), ('785', 'US-KS'), ('786', 'US-FL'),
    ('801', 'US-UT'), ('802', 'US-VT'), ('803', 'US-SC'), ('804', 'US-VA'), ('805', 'US-CA'), ('806', 'US-TX'),
    ('807', 'CA-ON'), ('808', 'US-HI'), ('809', 'DO'), ('810', 'US-MI'), ('812', 'US-IN'), ('813', 'US-FL'),
    ('814', 'US-PA'), ('815', 'US-IL'), ('816', 'US-MO'), ('817', 'US-TX'), ('818', 'US-CA'), ('819', 'CA-QC'),
    ('820', 'US-CA'), ('821', 'US-SC'), ('825', 'CA-AB'), ('826', 'US-VA'), ('828', 'US-NC'), ('830', 'US-TX'),
    ('831', 'US-CA'), ('832', 'US-TX'), ('835', 'US-PA'), ('838', 'US-NY'), ('839', 'US-SC'), ('840', 'US-CA'),
    ('843', 'US-SC'), ('845', 'US-NY'), ('847', 'US-IL'), ('848', 'US-NJ'), ('850', 'US-FL'), ('854', 'US-SC'),
    ('856', 'US-NJ'), ('857', 'US-MA'), ('858', 'US-CA'), ('859', 'US-KY'), ('860', 'US-CT'), ('862', 'US-NJ'),
    ('863', 'US-FL'), ('864', 'US-SC'), ('865', 'US-TN'), ('867', 'CA-NT'), ('867', 'CA-NU'), ('867', 'CA-YT'),
    ('870', 'US-AR'), ('872', 'US-IL'), ('873', 'CA-QC'), ('876', 'JM'), ('878', 'US-PA'), ('879', 'CA-NL'),
    ('901', 'US-TN'), ('902', 'CA-NS'), ('902', 'CA-PE'), ('903', 'US-TX'), ('904', 'US-FL'), ('905', 'CA-ON'),
    ('906', 'US-MI'), ('907', 'US-AK'), ('908', 'US-NJ'), ('909', 'US-CA'), ('910', 'US-NC'), ('912', 'US-GA'),
    ('913', 'US-KS'), ('914', 'US-NY'), ('915', 'US-TX'), ('916', 'US-CA'), ('917', 'US-NY'), ('918', 'US-OK'),
    ('919', 'US-NC'), ('920', 'US-WI'), ('925', 'US-CA'), ('928', 'US-AZ'), ('929', 'US-NY'), ('930', 'US-IN'),
    ('931', 'US-TN'), ('934', 'US-NY'), ('936', 'US-TX'), ('937', 'US-OH'), ('938', 'US-AL'), ('940', 'US-TX'),
    ('941', 'US-FL'), ('942', 'CA-ON'), ('943', 'US-GA'), ('945', 'US-TX'), ('947', 'US-MI'), ('948', 'US-VA'),
    ('949', 'US-CA'), ('951', 'US-CA'), ('952', 'US-MN'), ('954', 'US-FL'), ('956', 'US-TX'), ('959', 'US-CT'),
    ('970', 'US-CO'), ('971', 'US-OR'), ('972', 'US-TX'), ('973', 'US-NJ'), ('975', 'US-MO'), ('978', 'US-MA'),
    ('979', 'US-TX'), ('980', 'US-NC'), ('983', 'US-CO'), ('984', 'US-NC'), ('985', 'US-LA'), ('986', 'US-ID'),
    ('989', 'US-MI')
on conflict (npa, place) do nothing;

-- The places a number belongs to: +1, its area code's places and their countries (an unknown or
-- non-geographic area code, a toll-free one: US); others, the country whose calling code it
-- starts with, if a rule names it. Sorted, without repeats.
create function public.phone_places(p_phone text)
returns text[]
language sql
stable
set search_path = ''
as $$
    select case
        when p_phone is null then '{}'::text[]
        when p_phone like '+1%' then coalesce(
            (select array_agg(distinct p order by p)
             from public.nanp_area_codes a,
                  -- US territories keep the federal rules (the TCPA applies there).
                  unnest(array[a.place, split_part(a.place, '-', 1),
                               case when a.place in ('PR', 'VI', 'GU', 'MP', 'AS')
                                    then 'US' end]) p
             where a.npa = substr(p_phone, 3, 3) and p is not null),
            array['US'])
        else coalesce(
            (select array[r.place] from public.call_place_rules r
             where r.calling_code is not null and r.calling_code <> '+1'
               and p_phone like r.calling_code || '%'
             order by length(r.calling_code) desc limit 1),
            '{}'::text[])
    end;
$$;

-- The calling window of one local day for a number of p_places: {open, start, end, rules} where
-- start–end is the intersection of CALL_HOURS_* and each place's window for that weekday, or
-- {open: false, closed: why} on a holiday (a CALL_HOLIDAYS date, or a day of a listed calendar
-- the number belongs to), on a day a place allows no calls, or when the windows do not meet.
create function public.call_day_window(p_places text[], p_rules jsonb, p_day date)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    v_start time := public.call_rule(p_rules, 'hours_start')::time;
    v_end time := public.call_rule(p_rules, 'hours_end')::time;
    v_dow text := extract(isodow from p_day)::integer::text;
    v_listed text[] := array(select jsonb_array_elements_text(
                                 coalesce(p_rules -> 'holidays', '[]'::jsonb)));
    v_holiday public.call_holidays;
    v_rule public.call_place_rules;
    v_window jsonb;
    v_rules text[] := '{}';
begin
    if to_char(p_day, 'YYYY-MM-DD') = any (v_listed) then
        return jsonb_build_object('open', false, 'closed', 'a holiday of CALL_HOLIDAYS');
    end if;
    select * into v_holiday from public.call_holidays h
    where h.day = p_day and h.calendar = any (p_places) and h.calendar = any (v_listed)
    limit 1;
    if found then
        return jsonb_build_object('open', false, 'closed',
                                  'holiday: ' || v_holiday.name || ' (' || v_holiday.calendar || ')',
                                  'rules', to_jsonb(array[v_holiday.calendar]));
    end if;
    for v_rule in select * from public.call_place_rules r where r.place = any (p_places)
                  order by r.place loop
        v_window := v_rule.windows -> v_dow;
        if v_window is null or jsonb_typeof(v_window) <> 'array' then
            return jsonb_build_object('open', false, 'closed',
                                      v_rule.place || ' allows no calls on ' || trim(to_char(p_day, 'Day')),
                                      'rules', to_jsonb(array[v_rule.place]));
        end if;
        if (v_window ->> 0) is null or (v_window ->> 1) is null then
            return jsonb_build_object('open', false, 'closed',
                                      v_rule.place || ' has an incomplete window: no calls',
                                      'rules', to_jsonb(array[v_rule.place]));
        end if;
        v_start := greatest(v_start, (v_window ->> 0)::time);
        v_end := least(v_end, (v_window ->> 1)::time);
        v_rules := v_rules || v_rule.place;
    end loop;
    if v_start >= v_end then
        return jsonb_build_object('open', false, 'closed', 'the windows of ' || array_to_string(v_rules, ', ')
                                  || ' and CALL_HOURS_* do not meet', 'rules', to_jsonb(v_rules));
    end if;
    return jsonb_build_object('open', true, 'start', to_char(v_start, 'HH24:MI'),
                              'end', case when v_end = '24:00' then '24:00' else to_char(v_end, 'HH24:MI') end,
                              'rules', to_jsonb(v_rules));
end
$$;

-- Whether p_at is within the calling window of its local day in zone p_zone.
create function public.call_open_in(p_zone text, p_places text[], p_rules jsonb, p_at timestamptz)
returns boolean
language sql
stable
set search_path = ''
as $$
    select coalesce((w ->> 'open')::boolean
                    and (p_at at time zone p_zone)::time >= (w ->> 'start')::time
                    and (p_at at time zone p_zone)::time < (w ->> 'end')::time, false)
    from (select public.call_day_window(p_places, p_rules, (p_at at time zone p_zone)::date) w) x;
$$;

drop function public.call_window(text[], jsonb, timestamptz);

-- call_window (20261204000900_call_zones.sql), by place: whether p_at is within the calling
-- window of its local day in every zone of p_zones (call_day_window: CALL_HOURS_*, the rules of
-- p_places, the holidays), and if not, the first moment within the next 16 days when it is (null:
-- none). Zones Postgres does not know are skipped; no known zone: p_rules default_timezone.
-- Returns {allowed, next_at, zones, hours, local, windows, places, rules}.
create function public.call_window(p_zones text[], p_rules jsonb, p_at timestamptz,
                                   p_places text[] default '{}')
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
declare
    v_zones text[] := '{}';
    v_zone text;
    v_allowed boolean;
    v_next timestamptz;
    v_windows jsonb;
begin
    foreach v_zone in array coalesce(p_zones, '{}') loop
        continue when v_zone is null or v_zone = any (v_zones);
        begin
            perform p_at at time zone v_zone;
            v_zones := v_zones || v_zone;
        exception when others then
            continue;  -- a zone Postgres does not know
        end;
    end loop;
    if cardinality(v_zones) = 0 then
        v_zone := public.call_rule(p_rules, 'default_timezone');
        begin
            perform p_at at time zone v_zone;
            v_zones := array[v_zone];
        exception when others then
            v_zones := array['UTC'];
        end;
    end if;
    p_places := coalesce(p_places, '{}');

    select bool_and(public.call_open_in(z, p_places, p_rules, p_at)),
           jsonb_object_agg(z, public.call_day_window(p_places, p_rules, (p_at at time zone z)::date))
    into v_allowed, v_windows
    from unnest(v_zones) z;
    if not v_allowed then
        -- The common window, if any, opens when the last of the zones opens: the earliest
        -- opening (in any zone, over the next 16 days: weekends and holidays included) at which
        -- every zone is within its window.
        select min(c.opens) into v_next
        from (select (((p_at at time zone z)::date + d) + (x.w ->> 'start')::time) at time zone z
                     as opens
              from unnest(v_zones) z, generate_series(0, 15) d,
                   lateral (select public.call_day_window(
                                p_places, p_rules, (p_at at time zone z)::date + d) w) x
              where (x.w ->> 'open')::boolean) c
        where c.opens > p_at
          and not exists (select from unnest(v_zones) z
                          where not public.call_open_in(z, p_places, p_rules, c.opens));
    end if;
    return jsonb_build_object(
        'allowed', v_allowed, 'next_at', v_next, 'zones', to_jsonb(v_zones),
        'hours', (select string_agg(distinct case when (w.value ->> 'open')::boolean
                                                  then (w.value ->> 'start') || '–' || (w.value ->> 'end')
                                                  else 'closed (' || (w.value ->> 'closed') || ')' end,
                                    ' / ')
                  from jsonb_each(v_windows) w),
        'local', (select jsonb_object_agg(z, to_char(p_at at time zone z, 'YYYY-MM-DD HH24:MI Dy'))
                  from unnest(v_zones) z),
        'windows', v_windows,
        'places', to_jsonb(p_places),
        'rules', coalesce((select jsonb_agg(jsonb_build_object('place', r.place, 'source', r.source)
                                            order by r.place)
                           from public.call_place_rules r where r.place = any (p_places)),
                          '[]'::jsonb));
end
$$;

revoke all on function public.phone_places(text) from public, anon, authenticated;
revoke all on function public.call_day_window(text[], jsonb, date) from public, anon, authenticated;
revoke all on function public.call_open_in(text, text[], jsonb, timestamptz)
    from public, anon, authenticated;
revoke all on function public.call_window(text[], jsonb, timestamptz, text[])
    from public, anon, authenticated;
grant execute on function public.phone_places(text) to service_role;
grant execute on function public.call_day_window(text[], jsonb, date) to service_role;
grant execute on function public.call_open_in(text, text[], jsonb, timestamptz) to service_role;
grant execute on function public.call_window(text[], jsonb, timestamptz, text[]) to service_role;

create or replace function public.call_claim(p_lead_id uuid, p_rules jsonb)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
    v_lead public.leads;
    v_max integer := public.call_rule(p_rules, 'max_attempts')::integer;
    v_cooldown interval := make_interval(
        hours => public.call_rule(p_rules, 'person_cooldown_hours')::integer);
    v_cap integer := public.call_rule(p_rules, 'max_per_person_per_day')::integer;
    v_busy interval := make_interval(
        mins => public.call_rule(p_rules, 'wait_minutes.busy')::integer);
    v_other uuid;
    v_at timestamptz;
    v_window jsonb;
    v_next timestamptz;
    v_zones text;
    v_call_id uuid;
    v_policy text := public.call_rule(p_rules, 'consent');
    v_consent jsonb;
    v_asked boolean;
    v_dnc public.do_not_contact;
    v_places text[];
    v_capped text;
begin
    perform public.call_rule(p_rules, 'consent_checkboxes');
    v_lead := public.person_lock(p_lead_id);  -- the person, then the lead
    if v_lead.id is null then
        return public.call_decided(jsonb_build_object('decision', 'not_found', 'lead_id', p_lead_id));
    end if;
    if v_lead.status in ('booked', 'do_not_call') then
        return public.call_decided(jsonb_build_object('decision', v_lead.status, 'lead_id', p_lead_id));
    end if;
    if v_lead.status = 'calling' or exists (
        select from public.calls c where c.lead_id = p_lead_id and c.status = 'placing'
    ) then
        return public.call_decided(jsonb_build_object('decision', 'in_progress', 'lead_id', p_lead_id));
    end if;
    if v_lead.status <> 'call_queued' then
        return public.call_decided(jsonb_build_object('decision', 'not_queued', 'lead_id', p_lead_id,
                                  'status', v_lead.status));
    end if;
    if v_lead.phone is null then
        update public.leads l set status = 'fetched', next_call_at = null where l.id = p_lead_id;
        return public.call_decided(jsonb_build_object('decision', 'no_phone', 'lead_id', p_lead_id));
    end if;
    -- The places of the number (CALL_PLACE_RULES): their windows, holidays and per-person caps.
    v_places := case when public.call_rule(p_rules, 'place_rules')::boolean
                     then public.phone_places(v_lead.phone) else '{}'::text[] end;
    perform public.call_rule(p_rules, 'holidays');
    select r.place into v_capped
    from public.call_place_rules r
    where r.place = any (v_places) and r.max_per_person_per_day < v_cap
    order by r.max_per_person_per_day, r.place limit 1;
    if v_capped is not null then
        v_cap := (select r.max_per_person_per_day from public.call_place_rules r
                  where r.place = v_capped);
    end if;
    -- The do-not-call list, for this lead's phone and email, whoever they belong to.
    v_dnc := public.dnc_person_entry(p_lead_id);
    if v_dnc.id is not null then
        update public.leads l set status = 'do_not_call', next_call_at = null
        where l.id = p_lead_id;
        perform public.log_event(
            'elevenlabs', 'lead.do_not_call', 'ok',
            'Not called, now or ever: its ' || v_dnc.kind || ' ' || v_dnc.value
                || ' is on the do-not-call list since '
                || to_char(v_dnc.added_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC ('
                || v_dnc.source || ': ' || left(v_dnc.reason, 300) || ').',
            null, p_lead_id, null, jsonb_build_object('dnc_id', v_dnc.id, 'kind', v_dnc.kind));
        return public.call_decided(jsonb_build_object('decision', 'do_not_call', 'lead_id', p_lead_id,
                                  'dnc_id', v_dnc.id));
    end if;
    -- Consent (CALL_CONSENT): required places no call without it; recorded keeps what there is.
    if v_policy not in ('required', 'recorded', 'off') then
        raise exception 'CALL_CONSENT % is none of required, recorded, off', v_policy
            using errcode = '22023';
    end if;
    if v_policy <> 'off' then
        v_consent := coalesce(public.lead_consent(p_lead_id, p_rules), jsonb_build_object('id', null))
            || jsonb_build_object('policy', v_policy);
        if v_policy = 'required' and v_consent ->> 'id' is null then
            v_asked := exists (select from public.consents c where c.lead_id = p_lead_id);
            update public.leads l set status = 'no_consent', next_call_at = null
            where l.id = p_lead_id;
            perform public.log_event(
                'elevenlabs', 'call.no_consent', case when v_asked then 'ok' else 'error' end,
                public.no_consent_text(v_lead, p_rules), v_lead.form_id, p_lead_id,
                case when v_asked then null else 'no_consent' end,
                jsonb_build_object('form_id', v_lead.form_id, 'policy', v_policy,
                                   'consent_checkboxes', p_rules -> 'consent_checkboxes'));
            return public.call_decided(jsonb_build_object('decision', 'no_consent', 'lead_id', p_lead_id,
                                      'form_id', v_lead.form_id));
        end if;
    end if;
    if v_lead.call_attempts >= v_max then
        update public.leads l set status = 'no_answer', next_call_at = null
        where l.id = p_lead_id;
        return public.call_decided(jsonb_build_object('decision', 'max_attempts', 'lead_id', p_lead_id,
                                  'attempts', v_lead.call_attempts));
    end if;
    if v_lead.next_call_at is null or v_lead.next_call_at > public.clock_now() then
        return public.call_decided(jsonb_build_object('decision', 'not_due', 'lead_id', p_lead_id,
                                  'next_call_at', v_lead.next_call_at));
    end if;
    if v_lead.person_id is not null then
        -- Another lead of the person booked: this one rests.
        select l.id into v_other from public.leads l
        where l.person_id = v_lead.person_id and l.id <> p_lead_id and l.status = 'booked'
        limit 1;
        if found then
            update public.leads l set status = 'person_booked', next_call_at = null
            where l.id = p_lead_id;
            perform public.log_event(
                'elevenlabs', 'lead.person_booked', 'ok',
                'Not called: the same person (the same phone or email) booked a meeting through '
                    || 'lead ' || v_other || '; this lead rests in person_booked.',
                null, p_lead_id, null, jsonb_build_object('booked_lead_id', v_other));
            return public.call_decided(jsonb_build_object('decision', 'person_booked', 'lead_id', p_lead_id,
                                      'booked_lead_id', v_other));
        end if;
        -- Never two live calls to one person.
        select c.lead_id into v_other from public.calls c
        join public.leads l on l.id = c.lead_id
        where l.person_id = v_lead.person_id
          and ((c.status in ('placing', 'initiated') and c.outcome is null)
               -- Its start timed out (or came back without a conversation id): it may be
               -- ringing, so it is live for the retry wait its own lead keeps too.
               or (c.status = 'unknown' and c.requested_at > public.clock_now()
                   - make_interval(mins => public.call_rule(p_rules, 'wait_minutes.failed')::integer)))
        limit 1;
        if found then
            v_next := public.clock_now() + v_busy;
            update public.leads l set next_call_at = v_next where l.id = p_lead_id;
            perform public.log_event(
                'elevenlabs', 'call.person_busy', 'ok',
                'Not called now: the same person (the same phone or email) is on a call for lead '
                    || v_other || '. Tried again at '
                    || to_char(v_next at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC.',
                null, p_lead_id, null,
                jsonb_build_object('busy_lead_id', v_other, 'next_call_at', v_next));
            return public.call_decided(jsonb_build_object('decision', 'person_in_progress', 'lead_id', p_lead_id,
                                      'next_call_at', v_next));
        end if;
        -- A person who answered is left alone for the cooldown.
        select max(coalesce(c.ended_at, c.started_at, c.requested_at)) into v_at
        from public.calls c join public.leads l on l.id = c.lead_id
        where l.person_id = v_lead.person_id and c.outcome = 'answered';
        if v_at > public.clock_now() - v_cooldown then
            v_next := v_at + v_cooldown;
            update public.leads l set next_call_at = v_next where l.id = p_lead_id;
            perform public.log_event(
                'elevenlabs', 'call.person_cooldown', 'ok',
                'Not called yet: the same person (the same phone or email) answered a call at '
                    || to_char(v_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI')
                    || ' UTC; they are not called again before '
                    || to_char(v_next at time zone 'UTC', 'YYYY-MM-DD HH24:MI')
                    || ' UTC (CALL_PERSON_COOLDOWN_HOURS).',
                null, p_lead_id, null, jsonb_build_object('answered_at', v_at,
                                                           'next_call_at', v_next));
            return public.call_decided(jsonb_build_object('decision', 'person_cooldown', 'lead_id', p_lead_id,
                                      'next_call_at', v_next));
        end if;
        -- At most v_cap calls that may have rung in any rolling 24 hours, across their leads:
        -- the next one when the oldest of the last v_cap is 24 hours old.
        select c.requested_at into v_at
        from public.calls c join public.leads l on l.id = c.lead_id
        where l.person_id = v_lead.person_id and c.counted
          and c.requested_at > public.clock_now() - interval '24 hours'
        order by c.requested_at desc
        offset greatest(v_cap - 1, 0) limit 1;
        if found then
            v_next := v_at + interval '24 hours';
            update public.leads l set next_call_at = v_next where l.id = p_lead_id;
            perform public.log_event(
                'elevenlabs', 'call.person_daily_cap', 'ok',
                'Not called yet: the same person (the same phone or email) had ' || v_cap
                    || ' calls in the last 24 hours ('
                    || coalesce('the limit of ' || v_capped || ', call_place_rules',
                                'CALL_MAX_PER_PERSON_PER_DAY')
                    || '); the next one '
                    || 'is at ' || to_char(v_next at time zone 'UTC', 'YYYY-MM-DD HH24:MI')
                    || ' UTC.',
                null, p_lead_id, null, jsonb_build_object('next_call_at', v_next, 'cap', v_cap,
                                                           'cap_place', v_capped));
            return public.call_decided(jsonb_build_object('decision', 'person_daily_cap', 'lead_id', p_lead_id,
                                      'next_call_at', v_next));
        end if;
    end if;

    v_window := public.call_window(
        coalesce(nullif(v_lead.timezones, '{}'), array[v_lead.timezone]), p_rules, public.clock_now(),
        v_places);
    if not (v_window ->> 'allowed')::boolean then
        v_next := (v_window ->> 'next_at')::timestamptz;
        v_zones := (select string_agg(z, ', ') from jsonb_array_elements_text(v_window -> 'zones') z);
        if v_next is null then
            update public.leads l set status = 'no_calling_hours', next_call_at = null
            where l.id = p_lead_id;
            perform public.log_event(
                'elevenlabs', 'call.no_calling_hours', 'error',
                'Not called: the lead''s number may be in any of these time zones, which share no calling hours ('
                    || (v_window ->> 'hours') || ' in each): ' || v_zones || '. Call the lead by '
                    || 'hand, or set its time zones (leads.timezones) and queue it again.',
                null, p_lead_id, 'no_calling_hours', v_window);
            return public.call_decided(jsonb_build_object('decision', 'no_calling_hours', 'lead_id', p_lead_id,
                                      'timezones', v_window -> 'zones'));
        end if;
        update public.leads l set next_call_at = v_next where l.id = p_lead_id;
        perform public.log_event(
            'elevenlabs', 'call.scheduled', 'ok',
            'Outside calling hours (' || (v_window ->> 'hours') || ' in the zones the number '
                || 'may be in: ' || v_zones
                || coalesce('; the rules of ' || nullif(array_to_string(v_places, ', '), ''), '')
                || '); the call is scheduled for '
                || to_char(v_next at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC.',
            null, p_lead_id, null, v_window || jsonb_build_object('next_call_at', v_next));
        return public.call_decided(jsonb_build_object('decision', 'outside_hours', 'lead_id', p_lead_id,
                                  'next_call_at', v_next, 'timezones', v_window -> 'zones'));
    end if;

    insert into public.calls (lead_id, attempt, to_number, allowed_by, requested_at, consent)
    values (p_lead_id, v_lead.call_attempts + 1, v_lead.phone, v_window - 'allowed' - 'next_at',
            public.clock_now(), v_consent)
    returning id into v_call_id;
    update public.leads l set status = 'calling', call_attempts = l.call_attempts + 1,
                              next_call_at = null
    where l.id = p_lead_id;
    return public.call_decided(jsonb_build_object(
        'decision', 'place', 'lead_id', p_lead_id, 'call_id', v_call_id,
        'attempt', v_lead.call_attempts + 1, 'to_number', v_lead.phone,
        'full_name', v_lead.full_name));
end
$$;

-- For `make doctor`: the last day of each calendar CALL_HOLIDAYS lists (null: no such calendar),
-- and how many place rules there are.
create function public.call_rules_summary(p_calendars jsonb)
returns jsonb
language sql
stable
set search_path = ''
as $$
    select jsonb_build_object(
        'rules', (select count(*) from public.call_place_rules),
        'calendars', coalesce((select jsonb_object_agg(c, (select max(h.day) from public.call_holidays h
                                                           where h.calendar = c))
                               from jsonb_array_elements_text(p_calendars) c), '{}'::jsonb));
$$;

revoke all on function public.call_rules_summary(jsonb) from public, anon, authenticated;
grant execute on function public.call_rules_summary(jsonb) to service_role;
