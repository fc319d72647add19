"""What intake knows of the department directory: districts and their streets, and the category taxonomy.

The router owns the directory. Intake keeps a copy of its public part, as the router publishes
it (DirectoryPublished); until the first one arrives, the part read from the directory file the
router starts from. Pure: no database, no broker.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas.events import DirectoryPublished, PublicCategory, PublicDistrict, PublicStreet


@dataclass(frozen=True)
class Places:
    """The directory's public part in one version, with the look-ups intake's channels need."""

    published: DirectoryPublished | None  # None: read from the file, nothing published yet
    version: str
    districts: tuple[PublicDistrict, ...]
    categories: tuple[PublicCategory, ...]
    city: str = ""

    @classmethod
    def from_event(cls, payload: DirectoryPublished) -> Places:
        return cls(payload, payload.version, tuple(payload.districts), tuple(payload.categories), payload.city)

    @classmethod
    def from_file_data(cls, data: Mapping[str, Any]) -> Places:
        """From the directory YAML as the router imports it (version, districts, streets, categories)."""
        streets: dict[str, list[PublicStreet]] = {}
        for street in data.get("streets") or ():
            streets.setdefault(street["parent"], []).append(PublicStreet(code=street["code"], name=street["name"]))
        districts = tuple(PublicDistrict(code=d["code"], name=d["name"], streets=streets.get(d["code"], []))
                          for d in data.get("districts") or ())
        categories = tuple(PublicCategory(code=c["code"], name=c["name"], parent=c.get("parent"))
                           for c in data.get("categories") or ())
        return cls(None, str(data.get("version", "")), districts, categories, str(data.get("city", "")))

    def listing(self) -> dict[str, Any]:
        """For the console's pickers: the version, the city, districts with their streets, and the categories, in
        the directory's order (the shape of the router's /api/v1/router/directory)."""
        return {"version": self.version, "city": self.city,
                "districts": [d.model_dump(mode="json") for d in self.districts],
                "categories": [c.model_dump(mode="json") for c in self.categories]}

    @property
    def activated_at(self) -> datetime | None:
        return self.published.activated_at if self.published else None

    @functools.cached_property
    def category_names(self) -> dict[str, str]:
        return {c.code: c.name for c in self.categories}

    @functools.cached_property
    def _districts(self) -> dict[str, PublicDistrict]:
        return {d.code: d for d in self.districts}

    @functools.cached_property
    def _street_district(self) -> dict[str, tuple[PublicStreet, PublicDistrict]]:
        return {s.code: (s, d) for d in self.districts for s in d.streets}

    def unknown_codes(self, district: str | None, street: str | None,
                      category: str | None) -> list[tuple[str, str, str]]:
        """(field, Chinese, English) for each code given that the directory does not have.

        Judged only on a copy the router published: until the first DirectoryPublished arrives, this
        copy is the directory file the router started from, which may be older or newer than the
        version the router has in force, so a code missing from it may well be one the router knows,
        and refusing it would turn away a ticket the router could place.
        """
        if self.published is None:
            return []
        unknown = []
        for field, code, known, zh, en in (
                ("location.district", district, self._districts, "区", "district"),
                ("location.street", street, self._street_district, "街道", "street"),
                ("category", category, self.category_names, "类别", "category")):
            if code and code not in known:
                unknown.append((field, f"部门目录中没有{zh}代码 {code}，请从列表中重新选择",
                                f"the directory has no {en} with code {code}: choose one from the list"))
        return unknown

    def street_outside_district(self, district: str | None, street: str | None) -> tuple[str, str] | None:
        """Why a street does not fit the district given with it (Chinese, English); None when it fits.

        Only codes this copy knows are judged: a code it does not know (yet) is the router's to place.
        """
        if not district or not street or district not in self._districts or street not in self._street_district:
            return None
        found, its_district = self._street_district[street]
        if its_district.code == district:
            return None
        given = self._districts[district]
        return (f"{found.name}（{found.code}）属于{its_district.name}（{its_district.code}），不在{given.name}"
                f"（{given.code}），请重新选择区或街道",
                f"street {found.code} is in district {its_district.code}, not in {given.code}: "
                f"choose the district or the street again")
