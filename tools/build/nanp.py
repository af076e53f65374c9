"""The places of the North American Numbering Plan's area codes, from phonenumbers' geocoder: the
seed of ``public.nanp_area_codes`` (the calling rules of a +1 number are its state's).

Each area code maps to every place its geocoder entries name: the area code's own description
("Florida", "Toronto, ON", "Nova Scotia/Prince Edward Island") and those of its exchanges
("Fort Lee, NJ"); an area code whose entries name several states maps to each (its calls then
keep to the intersection of their windows). A place is an ISO 3166-2 subdivision for the US and
Canada (``US-FL``, ``CA-ON``) and the region for the other NANP countries (``JM``).

    python -m tools.build.nanp   # prints the SQL values of the seed
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers.geodata import GEOCODE_DATA

US_STATES = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA",
    "Colorado": "CO", "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA",
    "Hawaii": "HI", "Idaho": "ID", "Illinois": "IL", "Indiana": "IN", "Iowa": "IA",
    "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA", "Maine": "ME", "Maryland": "MD",
    "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN", "Mississippi": "MS",
    "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV", "New Hampshire": "NH",
    "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN",
    "Texas": "TX", "Utah": "UT", "Vermont": "VT", "Virginia": "VA", "Washington State": "WA",
    "Washington D.C.": "DC", "West Virginia": "WV", "Wisconsin": "WI", "Wyoming": "WY",
}  # fmt: skip
CA_PROVINCES = {
    "Alberta": "AB", "British Columbia": "BC", "British Colombia": "BC", "Manitoba": "MB",
    "New Brunswick": "NB", "Newfoundland and Labrador": "NL", "Northwest Territories": "NT",
    "Nunavut": "NU", "Yukon": "YT", "Nova Scotia": "NS", "Prince Edward Island": "PE",
    "Ontario": "ON", "Quebec": "QC", "Saskatchewan": "SK",
}  # fmt: skip
_CITY = re.compile(r", ([A-Z]{2})$")


def _subdivisions(country: str, description: str) -> set[str]:
    names = US_STATES if country == "US" else CA_PROVINCES
    codes = set(names.values())
    found: set[str] = set()
    for part in description.split("/"):
        part = part.strip()
        city = _CITY.search(part)
        if city and city.group(1) in codes:
            found.add(f"{country}-{city.group(1)}")
        elif part in names:
            found.add(f"{country}-{names[part]}")
    return found


def area_code_places() -> dict[str, list[str]]:
    """Every NANP area code the geocoder knows, with its places, sorted."""
    places: dict[str, set[str]] = {}
    for prefix, descriptions in GEOCODE_DATA.items():
        if not prefix.startswith("1") or len(prefix) < 4 or "en" not in descriptions:
            continue
        npa = prefix[1:4]
        country = phonenumbers.region_code_for_number(phonenumbers.parse(f"+1{npa}5550100"))
        if country in (None, "ZZ", "001"):
            continue
        found = _subdivisions(country, descriptions["en"]) if country in ("US", "CA") else {country}
        if found:
            places.setdefault(npa, set()).update(found)
    return {npa: sorted(found) for npa, found in sorted(places.items())}


def sql_values() -> str:
    """The seed as SQL ``values`` rows."""
    rows = [f"('{npa}', '{place}')" for npa, found in area_code_places().items() for place in found]
    return ",\n".join("    " + ", ".join(rows[i : i + 6]) for i in range(0, len(rows), 6))


if __name__ == "__main__":
    print(sql_values())
