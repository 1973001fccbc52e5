"""Deterministic sample data from a seed: vectorised numpy draws into `Table` columns, nodes built lazily.

Each kind draws from its own generator (`default_rng([seed, kind])`), so changing the volume of one kind
leaves the others unchanged. `updatedOn` is spread over the `days` days before the anchor (a UTC midnight,
exclusive); about 3 % of the rows of every kind (and always the first two) sit exactly at 00:00:00.000Z of
a day, so half-open `[start, end)` windows and Fluent's inclusive `DateRange` differ on real rows.

Refs: locations `LOC-0001`; standard products `SP-00001`, variants (the SKUs) `SP-00001-M`; inventory
positions `<sku>:<location>:DEFAULT` with quantities `<position>:LAST_ON_HAND` / `:RESERVED`; orders
`ORD-0000001`, items `ORD-0000001-L1` (1-4 lines, 2 % of orders 12-25, and `large_orders` orders 120, more
than one page of items), fulfilments `ORD-0000001-F1`; virtual positions `<sku>:<location>`
in virtual catalogues `BASE:1`, `ATS:1`. Catalogues: product `PC:MASTER:<retailer>`, inventory
`DEFAULT:<retailer>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fc_assets.sandbox.config import SandboxConfig
from fc_assets.sandbox.datetimes import DAY_MS
from fc_assets.sandbox.table import CodeColumn, Table

CITIES = [  # city, state, postcode, country, lat, lon, time zone
    ("Sydney", "NSW", "2000", "AU", -33.8688, 151.2093, "Australia/Sydney"),
    ("Melbourne", "VIC", "3000", "AU", -37.8136, 144.9631, "Australia/Melbourne"),
    ("Brisbane", "QLD", "4000", "AU", -27.4698, 153.0251, "Australia/Brisbane"),
    ("Perth", "WA", "6000", "AU", -31.9505, 115.8605, "Australia/Perth"),
    ("Adelaide", "SA", "5000", "AU", -34.9285, 138.6007, "Australia/Adelaide"),
    ("Hobart", "TAS", "7000", "AU", -42.8821, 147.3272, "Australia/Hobart"),
    ("Canberra", "ACT", "2600", "AU", -35.2809, 149.1300, "Australia/Sydney"),
    ("Darwin", "NT", "0800", "AU", -12.4634, 130.8456, "Australia/Darwin"),
    ("Auckland", "AUK", "1010", "NZ", -36.8485, 174.7633, "Pacific/Auckland"),
    ("Wellington", "WGN", "6011", "NZ", -41.2866, 174.7756, "Pacific/Auckland"),
]
STREETS = ["George St", "Collins St", "Queen St", "Hay St", "Rundle Mall", "King St", "High St", "Church St"]
FIRST = [
    "Olivia",
    "Jack",
    "Charlotte",
    "Noah",
    "Amelia",
    "William",
    "Isla",
    "Oliver",
    "Mia",
    "Leo",
    "Ava",
    "Lucas",
]
LAST = [
    "Smith",
    "Jones",
    "Williams",
    "Brown",
    "Wilson",
    "Taylor",
    "Nguyen",
    "Martin",
    "Lee",
    "Walker",
    "Chen",
]
ADJECTIVES = ["Classic", "Urban", "Coastal", "Alpine", "Everyday", "Premium", "Vintage", "Studio", "Active"]
NOUNS = ["Tee", "Hoodie", "Jacket", "Sneaker", "Backpack", "Cap", "Jeans", "Dress", "Scarf", "Boot", "Watch"]
SIZES = ["S", "M", "L", "XL"]
CARRIERS = [("AUSPOST", "Australia Post"), ("STARTRACK", "StarTrack"), ("COURIERSPLEASE", "CouriersPlease")]
LOCATION_TYPES = ["STORE", "WAREHOUSE", "DC"]
ORDER_STATUSES = ["CREATED", "BOOKED", "ASSIGNED", "PICK_PACK", "COMPLETE", "CANCELLED"]
ORDER_STATUS_P = [0.08, 0.12, 0.15, 0.1, 0.45, 0.1]
FULFILMENT_STATUS = {
    "ASSIGNED": "AWAITING_WAVE",
    "PICK_PACK": "PICK_PACK",
    "COMPLETE": "FULFILLED",
    "CANCELLED": "REJECTED",
}
VARIANT_ID_BASE = 1_000_001  # variant product ids start here, standard product ids at 1
LARGE_ORDER_ITEMS = 120
KINDS = ["locations", "products", "inventory", "virtual", "orders", "fulfilments"]


def attr(name: str, value: Any, type_: str = "STRING") -> dict[str, Any]:
    return {"name": name, "type": type_, "value": value}


@dataclass
class Generated:
    """What `generate` returns: the tables plus the few shared objects nodes point at."""

    tables: dict[str, Table]
    retailer: dict[str, Any]
    catalogue_children: dict[str, Any]  # index structures the resolvers use (items, quantities, variants)


class Draws:
    """The seeded draws of one kind, plus its spread of timestamps."""

    def __init__(self, config: SandboxConfig, kind: str) -> None:
        self.rng = np.random.default_rng([config.seed, KINDS.index(kind)])
        self.anchor = config.anchor_ms
        self.span = config.volumes.days * DAY_MS

    def times(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(updatedOn, createdOn) in ms: updated in [anchor - days, anchor), created up to 10 days earlier."""
        updated = self.anchor - self.rng.integers(1, self.span + 1, n, dtype=np.int64)
        midnight = self.rng.random(n) < 0.03
        midnight[: min(n, 2)] = True
        updated[midnight] -= updated[midnight] % DAY_MS
        created = updated - self.rng.integers(0, 10 * DAY_MS, n, dtype=np.int64)
        created[midnight] = updated[midnight]
        return updated, created


def code_column(vocab: list[str], codes: np.ndarray) -> CodeColumn:
    return CodeColumn(list(vocab), np.asarray(codes, dtype=np.int32))


def const_column(value: str, n: int) -> CodeColumn:
    return code_column([value], np.zeros(n, dtype=np.int32))


def add_large_orders(
    config: SandboxConfig,
    n_items: np.ndarray,
    item_start: np.ndarray,
    item_sku: np.ndarray,
    item_qty: np.ndarray,
    n_skus: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grow `large_orders` orders to `LARGE_ORDER_ITEMS` lines (more than a client's first page of items),
    appending lines after their drawn ones. Drawn from a generator of their own, so every other order keeps
    its lines and the number of orders does not change."""
    n_ord = len(n_items)
    n_large = min(config.volumes.large_orders, n_ord)
    if not n_large or not n_ord:
        return n_items, item_start, item_sku, item_qty
    rng = np.random.default_rng([config.seed, KINDS.index("orders"), 1])
    large = np.sort(rng.choice(n_ord, n_large, replace=False))
    extra = np.maximum(LARGE_ORDER_ITEMS - n_items[large], 0)
    at = np.repeat(item_start[large + 1], extra)  # after the order's last drawn line
    item_sku = np.insert(item_sku, at, rng.integers(0, n_skus, int(extra.sum())))
    item_qty = np.insert(item_qty, at, rng.integers(1, 4, int(extra.sum())))
    n_items = n_items.copy()
    n_items[large] += extra
    item_start = np.concatenate([[0], np.cumsum(n_items)]).astype(np.int64)
    return n_items, item_start, item_sku, item_qty


def generate(config: SandboxConfig) -> Generated:
    v = config.volumes
    rid = str(config.retailer_id)
    base_ms = config.anchor_ms - (v.days + 20) * DAY_MS
    retailer = {
        "id": rid,
        "ref": f"SANDBOX_RETAILER_{rid}",
        "status": "ACTIVE",
        "tradingName": "Sandbox Retail",
        "summary": "Retailer of the fc_assets Fluent sandbox",
        "websiteUrl": "https://sandbox.example.com",
        "primaryEmail": "retail@example.com",
        "supportEmail": "support@example.com",
        "supportPhone": "1300 000 000",
        "createdOn": int(base_ms),
        "updatedOn": int(base_ms),
    }
    tables: dict[str, Table] = {}
    children: dict[str, Any] = {}

    # --------------------------------------------------------------------------------- catalogues
    def catalogue_table(kind: str, rows: list[dict[str, Any]]) -> Table:
        for i, node in enumerate(rows):
            node.update(
                id=str(i + 1),
                _row=i,
                createdOn=int(base_ms),
                updatedOn=int(base_ms),
                workflowVersion=1,
                attributes=[],
            )
        n = len(rows)
        types = sorted({r["type"] for r in rows})
        return Table(
            kind,
            n=n,
            updated_ms=np.full(n, base_ms),
            created_ms=np.full(n, base_ms),
            build=lambda row: rows[row],
            refs=[r["ref"] for r in rows],
            ref_key=lambda node: node["ref"],
            filters={
                "type": code_column(types, [types.index(r["type"]) for r in rows]),
                "status": const_column("ACTIVE", n),
            },
            extract={"type": lambda node: node["type"], "status": lambda node: node.get("status")},
        )

    pc_ref, ic_ref = f"PC:MASTER:{rid}", f"DEFAULT:{rid}"
    tables["product_catalogues"] = catalogue_table(
        "product_catalogues",
        [
            {
                "ref": pc_ref,
                "type": "MASTER",
                "status": "ACTIVE",
                "name": "Master product catalogue",
                "description": "Every product of the sandbox retailer",
                "retailerRefs": [rid],
                "workflowRef": "PRODUCT_CATALOGUE::MASTER",
            }
        ],
    )
    tables["inventory_catalogues"] = catalogue_table(
        "inventory_catalogues",
        [
            {
                "ref": ic_ref,
                "type": "DEFAULT",
                "status": "ACTIVE",
                "name": "Default inventory catalogue",
                "description": "Inventory positions of every location",
                "retailerRefs": [rid],
                "workflowRef": "INVENTORY_CATALOGUE::DEFAULT",
            }
        ],
    )
    vc_refs = ["BASE:" + rid, "ATS:" + rid] + [f"VC{i}:{rid}" for i in range(2, v.virtual_catalogues)]
    vc_refs = vc_refs[: v.virtual_catalogues]
    tables["virtual_catalogues"] = catalogue_table(
        "virtual_catalogues",
        [
            {
                "ref": ref,
                "type": ref.split(":")[0],
                "status": "ACTIVE",
                "name": f"{ref.split(':')[0]} virtual catalogue",
                "description": None,
                "inventoryCatalogueRef": ic_ref,
                "productCatalogueRef": pc_ref,
                "networkIds": [],
                "controlGroupRef": None,
                "retailerRefs": [rid],
                "workflowRef": f"VIRTUAL_CATALOGUE::{ref.split(':')[0]}",
            }
            for ref in vc_refs
        ],
    )
    product_catalogue = tables["product_catalogues"].node(0)
    inventory_catalogue = tables["inventory_catalogues"].node(0)

    # ---------------------------------------------------------------------------------- locations
    d = Draws(config, "locations")
    n_loc = v.locations
    loc_updated, loc_created = d.times(n_loc)
    loc_type = d.rng.choice(len(LOCATION_TYPES), n_loc, p=[0.7, 0.2, 0.1])
    loc_status = (d.rng.random(n_loc) < 0.05).astype(np.int32)  # 0 ACTIVE, 1 INACTIVE
    loc_city = d.rng.integers(0, len(CITIES), n_loc)
    loc_street = d.rng.integers(0, len(STREETS), n_loc)
    loc_carrier = d.rng.integers(0, len(CARRIERS), n_loc)
    loc_refs = [f"LOC-{i + 1:04d}" for i in range(n_loc)]

    def build_location(i: int) -> dict[str, Any]:
        city, state, postcode, country, lat, lon, tz = CITIES[loc_city[i]]
        ltype = LOCATION_TYPES[loc_type[i]]
        ref = loc_refs[i]
        name = f"{city} {ltype.title()} {i + 1}"
        created, updated = int(loc_created[i]), int(loc_updated[i])
        carrier, carrier_name = CARRIERS[loc_carrier[i]]
        return {
            "_row": i,
            "id": str(i + 1),
            "ref": ref,
            "type": ltype,
            "status": ("ACTIVE", "INACTIVE")[loc_status[i]],
            "name": name,
            "supportPhoneNumber": f"02 9{i:03d} {1000 + i % 9000}",
            "defaultCarrier": carrier,
            "defaultCarrierName": carrier_name,
            "workflowRef": f"LOCATION::{ltype}",
            "workflowVersion": 1,
            "createdOn": created,
            "updatedOn": updated,
            "retailer": retailer,
            "attributes": [attr("region", state)],
            "primaryAddress": {
                "__typename": "StoreAddress",
                "id": str(i + 1),
                "ref": ref,
                "type": "STORE",
                "_location": ref,
                "companyName": "Sandbox Retail",
                "name": name,
                "street": f"{10 + i} {STREETS[loc_street[i]]}",
                "street2": None,
                "city": city,
                "state": state,
                "postcode": postcode,
                "region": state,
                "country": country,
                "latitude": lat,
                "longitude": lon,
                "timeZone": tz,
                "email": None,
                "directions": None,
                "createdOn": created,
                "updatedOn": updated,
            },
            "openingSchedule": {
                "id": str(i + 1),
                "createdOn": created,
                "updatedOn": updated,
                "allHours": ltype != "STORE",
                **{
                    f"{day}{part}": (0 if ltype != "STORE" else (900 if part == "Start" else 1700))
                    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
                    for part in ("Start", "End")
                },
            },
        }

    tables["locations"] = Table(
        "locations",
        n=n_loc,
        updated_ms=loc_updated,
        created_ms=loc_created,
        build=build_location,
        refs=loc_refs,
        ref_key=lambda node: node["ref"],
        filters={
            "type": code_column(LOCATION_TYPES, loc_type),
            "status": code_column(["ACTIVE", "INACTIVE"], loc_status),
        },
        extract={"type": lambda node: node.get("type"), "status": lambda node: node.get("status")},
    )

    # ----------------------------------------------------------------------------------- products
    d = Draws(config, "products")
    n_std = v.products
    std_updated, std_created = d.times(n_std)
    std_adj = d.rng.integers(0, len(ADJECTIVES), n_std)
    std_noun = d.rng.integers(0, len(NOUNS), n_std)
    std_price = np.round(d.rng.uniform(9.0, 250.0, n_std), 0) - 0.05
    n_var_of = d.rng.integers(1, len(SIZES) + 1, n_std)
    n_var = int(n_var_of.sum())
    var_std = np.repeat(np.arange(n_std), n_var_of)
    var_size = np.arange(n_var) - np.repeat(np.cumsum(n_var_of) - n_var_of, n_var_of)
    var_updated, var_created = d.times(n_var)
    std_refs = [f"SP-{i + 1:05d}" for i in range(n_std)]
    var_refs = [f"{std_refs[s]}-{SIZES[z]}" for s, z in zip(var_std.tolist(), var_size.tolist(), strict=True)]
    variants_of = np.concatenate([[0], np.cumsum(n_var_of)]).tolist()
    children["variants_of"] = lambda std_row: (
        list(range(variants_of[std_row], variants_of[std_row + 1])) if std_row < n_std else []
    )

    def product_common(
        ref: str, name: str, price: float, gtin: str, created: int, updated: int, ptype: str, row: int
    ) -> dict[str, Any]:
        return {
            "_row": row,
            "id": str(row + 1),
            "ref": ref,
            "type": ptype,
            "status": "ACTIVE",
            "name": name,
            "summary": f"{name} from the sandbox catalogue",
            "gtin": gtin,
            "catalogue": product_catalogue,
            "prices": [{"type": "DEFAULT", "currency": "AUD", "value": float(price)}],
            "tax": {"country": "AU", "group": "GST", "tariff": "10"},
            "attributes": [attr("brand", "Sandbox")],
            "workflowRef": "PRODUCT_CATALOGUE::MASTER",
            "workflowVersion": 1,
            "createdOn": int(created),
            "updatedOn": int(updated),
        }

    def build_standard(i: int) -> dict[str, Any]:
        name = f"{ADJECTIVES[std_adj[i]]} {NOUNS[std_noun[i]]} {i + 1}"
        node = product_common(
            std_refs[i], name, std_price[i], f"93{i:011d}", std_created[i], std_updated[i], "STANDARD", i
        )
        node["__typename"] = "StandardProduct"
        return node

    def build_variant(i: int) -> dict[str, Any]:
        s = int(var_std[i])
        name = f"{ADJECTIVES[std_adj[s]]} {NOUNS[std_noun[s]]} {s + 1} {SIZES[var_size[i]]}"
        node = product_common(
            var_refs[i], name, std_price[s], f"94{i:011d}", var_created[i], var_updated[i], "VARIANT", i
        )
        node["__typename"] = "VariantProduct"
        node["id"] = str(VARIANT_ID_BASE + i)  # products share one id space in Fluent
        node["_standard"] = (pc_ref, std_refs[s])
        return node

    def product_table(
        kind: str, n: int, updated: np.ndarray, created: np.ndarray, build: Any, refs: list[str], ptype: str
    ) -> Table:
        return Table(
            kind,
            n=n,
            id_base=VARIANT_ID_BASE if ptype == "VARIANT" else 1,
            updated_ms=updated,
            created_ms=created,
            build=build,
            refs=[(pc_ref, r) for r in refs],
            ref_key=lambda node: (node["catalogue"]["ref"], node["ref"]),
            filters={
                "type": const_column(ptype, n),
                "status": const_column("ACTIVE", n),
                "catalogue": const_column(pc_ref, n),
            },
            extract={
                "type": lambda node: node.get("type"),
                "status": lambda node: node.get("status"),
                "catalogue": lambda node: node["catalogue"]["ref"],
            },
        )

    tables["standard_products"] = product_table(
        "standard_products", n_std, std_updated, std_created, build_standard, std_refs, "STANDARD"
    )
    tables["variant_products"] = product_table(
        "variant_products", n_var, var_updated, var_created, build_variant, var_refs, "VARIANT"
    )

    # ---------------------------------------------------------------------------------- inventory
    d = Draws(config, "inventory")
    n_pos = v.inventory_positions
    pairs = n_var * n_loc
    if n_pos > pairs:
        raise ValueError(
            f"{n_pos} inventory positions need more SKUs x locations than {n_var} x {n_loc}; "
            "raise --products or --locations"
        )
    pick = np.sort(d.rng.choice(pairs, n_pos, replace=False)) if n_pos else np.zeros(0, dtype=np.int64)
    pos_sku, pos_loc = pick // n_loc, pick % n_loc
    pos_updated, pos_created = d.times(n_pos)
    pos_qty = d.rng.integers(0, 250, n_pos)
    has_reserved = d.rng.random(n_pos) < 0.2
    res_pos = np.flatnonzero(has_reserved)
    n_res = len(res_pos)
    res_qty = d.rng.integers(1, 5, n_res)
    res_updated = np.maximum(
        pos_created[res_pos] + 1, pos_updated[res_pos] - d.rng.integers(0, DAY_MS, n_res)
    )
    pos_refs = [
        f"{var_refs[s]}:{loc_refs[lc]}:DEFAULT"
        for s, lc in zip(pos_sku.tolist(), pos_loc.tolist(), strict=True)
    ]
    qty_pos = np.concatenate([np.arange(n_pos), res_pos]).astype(np.int64)
    qty_updated = np.concatenate([pos_updated, res_updated])
    qty_created = np.concatenate([pos_created, pos_created[res_pos]])
    qty_type = np.concatenate([np.zeros(n_pos, np.int32), np.ones(n_res, np.int32)])
    quantities_of: dict[tuple[str, str], list[int]] = {(ic_ref, r): [i] for i, r in enumerate(pos_refs)}
    for k, p in enumerate(res_pos.tolist()):
        quantities_of[(ic_ref, pos_refs[p])].append(n_pos + k)
    children["quantities_of"] = quantities_of

    def build_position(i: int) -> dict[str, Any]:
        return {
            "_row": i,
            "id": str(i + 1),
            "ref": pos_refs[i],
            "type": "DEFAULT",
            "status": "ACTIVE",
            "productRef": var_refs[pos_sku[i]],
            "locationRef": loc_refs[pos_loc[i]],
            "onHand": int(pos_qty[i]),
            "catalogue": inventory_catalogue,
            "attributes": [],
            "workflowRef": "INVENTORY_CATALOGUE::DEFAULT",
            "workflowVersion": 1,
            "createdOn": int(pos_created[i]),
            "updatedOn": int(pos_updated[i]),
        }

    def build_quantity(i: int) -> dict[str, Any]:
        p = int(qty_pos[i])
        qtype = ("LAST_ON_HAND", "RESERVED")[qty_type[i]]
        return {
            "_row": i,
            "id": str(i + 1),
            "ref": f"{pos_refs[p]}:{qtype}",
            "type": qtype,
            "status": "ACTIVE",
            "quantity": int(pos_qty[p] if i < n_pos else res_qty[i - n_pos]),
            "condition": "NEW",
            "expectedOn": None,
            "storageAreaRef": None,
            "catalogue": inventory_catalogue,
            "attributes": [],
            "_position": (ic_ref, pos_refs[p]),
            "workflowRef": "INVENTORY_CATALOGUE::DEFAULT",
            "workflowVersion": 1,
            "createdOn": int(qty_created[i]),
            "updatedOn": int(qty_updated[i]),
        }

    tables["inventory_positions"] = Table(
        "inventory_positions",
        n=n_pos,
        updated_ms=pos_updated,
        created_ms=pos_created,
        build=build_position,
        refs=[(ic_ref, r) for r in pos_refs],
        ref_key=lambda node: (node["catalogue"]["ref"], node["ref"]),
        filters={
            "type": const_column("DEFAULT", n_pos),
            "status": const_column("ACTIVE", n_pos),
            "catalogue": const_column(ic_ref, n_pos),
            "productRef": code_column(var_refs, pos_sku),
            "locationRef": code_column(loc_refs, pos_loc),
        },
        extract={
            "type": lambda node: node.get("type"),
            "status": lambda node: node.get("status"),
            "catalogue": lambda node: node["catalogue"]["ref"],
            "productRef": lambda node: node["productRef"],
            "locationRef": lambda node: node.get("locationRef"),
        },
    )
    n_qty = n_pos + n_res
    tables["inventory_quantities"] = Table(
        "inventory_quantities",
        n=n_qty,
        updated_ms=qty_updated,
        created_ms=qty_created,
        build=build_quantity,
        refs=[
            (ic_ref, f"{pos_refs[p]}:{('LAST_ON_HAND', 'RESERVED')[t]}")
            for p, t in zip(qty_pos.tolist(), qty_type.tolist(), strict=True)
        ],
        ref_key=lambda node: (node["catalogue"]["ref"], node["ref"]),
        filters={
            "type": code_column(["LAST_ON_HAND", "RESERVED"], qty_type),
            "status": const_column("ACTIVE", n_qty),
            "catalogue": const_column(ic_ref, n_qty),
        },
        extract={
            "type": lambda node: node.get("type"),
            "status": lambda node: node.get("status"),
            "catalogue": lambda node: node["catalogue"]["ref"],
        },
    )

    # ---------------------------------------------------------------------------- virtual positions
    d = Draws(config, "virtual")
    n_vc = len(vc_refs)
    n_vp = v.virtual_positions if n_vc else 0
    if n_vp > pairs * max(n_vc, 1):
        raise ValueError(f"{n_vp} virtual positions need more SKUs x locations x catalogues")
    pick = np.sort(d.rng.choice(pairs * max(n_vc, 1), n_vp, replace=False)) if n_vp else np.zeros(0, np.int64)
    vp_cat, rest = pick // pairs, pick % pairs
    vp_sku, vp_loc = rest // n_loc, rest % n_loc
    vp_updated, vp_created = d.times(n_vp)
    vp_qty = d.rng.integers(0, 200, n_vp)
    vc_nodes = [tables["virtual_catalogues"].node(i) for i in range(n_vc)]

    def build_virtual_position(i: int) -> dict[str, Any]:
        cat = vc_nodes[vp_cat[i]]
        return {
            "_row": i,
            "id": str(i + 1),
            "ref": f"{var_refs[vp_sku[i]]}:{loc_refs[vp_loc[i]]}",
            "type": cat["type"],
            "status": "ACTIVE",
            "productRef": var_refs[vp_sku[i]],
            "groupRef": loc_refs[vp_loc[i]],
            "quantity": int(vp_qty[i]),
            "catalogue": cat,
            "attributes": [],
            "workflowRef": cat["workflowRef"],
            "workflowVersion": 1,
            "createdOn": int(vp_created[i]),
            "updatedOn": int(vp_updated[i]),
        }

    tables["virtual_positions"] = Table(
        "virtual_positions",
        n=n_vp,
        updated_ms=vp_updated,
        created_ms=vp_created,
        build=build_virtual_position,
        refs=[
            (vc_refs[c], f"{var_refs[s]}:{loc_refs[lc]}")
            for c, s, lc in zip(vp_cat.tolist(), vp_sku.tolist(), vp_loc.tolist(), strict=True)
        ],
        ref_key=lambda node: (node["catalogue"]["ref"], node["ref"]),
        filters={
            "type": code_column([r.split(":")[0] for r in vc_refs], vp_cat),
            "status": const_column("ACTIVE", n_vp),
            "catalogue": code_column(vc_refs, vp_cat),
            "productRef": code_column(var_refs, vp_sku),
            "groupRef": code_column(loc_refs, vp_loc),
        },
        extract={
            "type": lambda node: node.get("type"),
            "status": lambda node: node.get("status"),
            "catalogue": lambda node: node["catalogue"]["ref"],
            "productRef": lambda node: node.get("productRef"),
            "groupRef": lambda node: node.get("groupRef"),
        },
    )

    # ------------------------------------------------------------------------------------- orders
    d = Draws(config, "orders")
    n_ord = v.orders
    ord_updated, ord_created = d.times(n_ord)
    ord_status = d.rng.choice(len(ORDER_STATUSES), n_ord, p=ORDER_STATUS_P).astype(np.int32)
    ord_type = (d.rng.random(n_ord) < 0.3).astype(np.int32)  # 0 HD, 1 CC
    ord_express = d.rng.random(n_ord) < 0.25
    ord_pickup = d.rng.integers(0, max(n_loc, 1), n_ord)
    n_cust = max(1, n_ord // 3)
    ord_cust = d.rng.integers(0, n_cust, n_ord)
    ord_city = d.rng.integers(0, len(CITIES), n_ord)
    n_items = d.rng.integers(1, 5, n_ord)
    big = d.rng.random(n_ord) < 0.02
    n_items[big] = d.rng.integers(12, 26, int(big.sum()))
    item_start = np.concatenate([[0], np.cumsum(n_items)]).astype(np.int64)
    total_items = int(item_start[-1])
    item_sku = d.rng.integers(0, max(n_var, 1), total_items)
    item_qty = d.rng.integers(1, 4, total_items)
    n_items, item_start, item_sku, item_qty = add_large_orders(
        config, n_items, item_start, item_sku, item_qty, max(n_var, 1)
    )
    total_items = int(item_start[-1])
    item_price = std_price[var_std[item_sku]] if n_var else np.zeros(total_items)
    line_total = item_qty * item_price
    ord_total = np.add.reduceat(line_total, item_start[:-1]) if n_ord else np.zeros(0)
    delivery_price = np.where(ord_type == 1, 0.0, np.where(ord_express, 14.95, 9.95))
    ord_total = np.round(ord_total + delivery_price, 2)
    ord_refs = [f"ORD-{i + 1:07d}" for i in range(n_ord)]
    # plain lists: indexing them is several times faster than numpy scalars in the per-row builders
    o_updated, o_created, o_status, o_type = (
        ord_updated.tolist(),
        ord_created.tolist(),
        ord_status.tolist(),
        ord_type.tolist(),
    )
    o_express, o_pickup, o_cust, o_city = (
        ord_express.tolist(),
        ord_pickup.tolist(),
        ord_cust.tolist(),
        ord_city.tolist(),
    )
    o_total, o_delivery, i_start = ord_total.tolist(), delivery_price.tolist(), item_start.tolist()
    i_sku, i_qty, i_price = item_sku.tolist(), item_qty.tolist(), np.asarray(item_price, dtype=float).tolist()
    i_tax = np.round(np.asarray(item_price, dtype=float) / 11, 2).tolist()
    i_total = np.round(line_total, 2).tolist()
    i_total_tax = np.round(line_total / 11, 2).tolist()
    children["items_of"] = lambda order_row: (i_start[order_row], i_start[order_row + 1])
    children["item_order"] = lambda item: int(np.searchsorted(item_start, item, "right") - 1)

    def customer(c: int, created: str) -> dict[str, Any]:
        first, last = FIRST[c % len(FIRST)], LAST[(c // len(FIRST)) % len(LAST)]
        email = f"{first}.{last}.{c + 1}@example.com".lower()
        return {
            "id": str(c + 1),
            "ref": f"CUST-{c + 1:06d}",
            "status": "ACTIVE",
            "createdOn": created,
            "updatedOn": created,
            "attributes": [],
            "title": None,
            "country": "AU",
            "firstName": first,
            "lastName": last,
            "username": email,
            "primaryEmail": email,
            "primaryPhone": f"04{c:08d}"[:10],
            "timezone": "Australia/Sydney",
            "promotionOptIn": c % 3 == 0,
            "retailer": retailer,
        }

    def build_order(i: int) -> dict[str, Any]:
        otype = ("HD", "CC")[o_type[i]]
        status = ORDER_STATUSES[o_status[i]]
        created, updated = o_created[i], o_updated[i]
        cust = customer(o_cust[i], created)
        city, state, postcode, country, lat, lon, tz = CITIES[o_city[i]]
        ref = ord_refs[i]
        total = o_total[i]
        if otype == "CC" and n_loc:
            pickup = loc_refs[o_pickup[i]]
            delivery_type = "STANDARD"
        else:
            pickup, delivery_type = None, "EXPRESS" if o_express[i] else "STANDARD"
        return {
            "_row": i,
            "id": str(i + 1),
            "ref": ref,
            "type": otype,
            "status": status,
            "workflowRef": f"ORDER::{otype}",
            "workflowVersion": 1,
            "createdOn": created,
            "updatedOn": updated,
            "totalPrice": total,
            "totalTaxPrice": round(total / 11, 2),
            "retailer": retailer,
            "customer": cust,
            "customerLink": {"ref": cust["ref"]},
            "attributes": [attr("channel", "WEB" if i % 4 else "APP")],
            "fulfilmentChoice": {
                "id": str(i + 1),
                "ref": f"{ref}-FC",
                "type": otype,
                "status": "CREATED",
                "workflowRef": f"ORDER::{otype}",
                "workflowVersion": 1,
                "createdOn": created,
                "updatedOn": created,
                "currency": "AUD",
                "deliveryFirstName": cust["firstName"],
                "deliveryLastName": cust["lastName"],
                "deliveryContact": cust["primaryPhone"],
                "deliveryEmail": cust["primaryEmail"],
                "deliverAfter": None,
                "deliverBefore": None,
                "dispatchOn": None,
                "attributes": [],
                "deliveryInstruction": None,
                "deliveryType": delivery_type,
                "fulfilmentPrice": o_delivery[i],
                "fulfilmentTaxPrice": round(o_delivery[i] / 11, 2),
                "fulfilmentType": "CC_PFS" if otype == "CC" else "HD_WAREHOUSE",
                "pickupLocationRef": pickup,
                "deliveryAddress": {
                    "__typename": "CustomerAddress",
                    "id": str(i + 1),
                    "ref": f"{ref}-ADDR",
                    "type": "DELIVERY",
                    "createdOn": created,
                    "updatedOn": created,
                    "companyName": None,
                    "name": f"{cust['firstName']} {cust['lastName']}",
                    "street": f"{1 + i % 300} {STREETS[i % 8]}",
                    "street2": None if i % 5 else "Unit 2",
                    "city": city,
                    "state": state,
                    "postcode": postcode,
                    "region": state,
                    "country": country,
                    "latitude": lat,
                    "longitude": lon,
                    "timeZone": tz,
                    "email": cust["primaryEmail"],
                },
            },
        }

    def build_item(k: int, order_row: int) -> dict[str, Any]:
        status = ORDER_STATUSES[o_status[order_row]]
        price = i_price[k]
        return {
            "_row": k,
            "_order": order_row,
            "_product": i_sku[k],
            "id": str(k + 1),
            "ref": f"{ord_refs[order_row]}-L{k - i_start[order_row] + 1}",
            "status": "CREATED" if status in ("CREATED", "BOOKED") else status,
            "createdOn": o_created[order_row],
            "updatedOn": o_updated[order_row],
            "quantity": i_qty[k],
            "paidPrice": price,
            "currency": "AUD",
            "price": price,
            "taxPrice": i_tax[k],
            "taxType": "GST",
            "totalPrice": i_total[k],
            "totalTaxPrice": i_total_tax[k],
            "attributes": [],
        }

    children["build_item"] = build_item
    tables["orders"] = Table(
        "orders",
        n=n_ord,
        cache=False,
        updated_ms=ord_updated,
        created_ms=ord_created,
        build=build_order,
        refs=ord_refs,
        ref_key=lambda node: node["ref"],
        filters={
            "type": code_column(["HD", "CC"], ord_type),
            "status": code_column(ORDER_STATUSES, ord_status),
            "retailerId": const_column(rid, n_ord),
        },
        extract={
            "type": lambda node: node["type"],
            "status": lambda node: node.get("status"),
            "retailerId": lambda node: node["retailer"]["id"],
        },
    )

    # -------------------------------------------------------------------------------- fulfilments
    d = Draws(config, "fulfilments")
    ful_order = np.flatnonzero(ord_status >= ORDER_STATUSES.index("ASSIGNED"))
    n_ful = len(ful_order)
    ful_updated, ful_created = d.times(n_ful)
    ful_loc = d.rng.integers(0, max(n_loc, 1), n_ful)

    def build_fulfilment(f: int) -> dict[str, Any]:
        o = int(ful_order[f])
        order = build_order(o)
        fc = order["fulfilmentChoice"]
        status = FULFILMENT_STATUS[order["status"]]
        if not n_loc:
            loc = None  # a sandbox seeded without locations: fulfilments from nowhere
        else:
            loc = loc_refs[ord_pickup[o]] if order["type"] == "CC" else loc_refs[ful_loc[f]]
        return {
            "_row": f,
            "_order": o,
            "_location": loc,
            "id": str(f + 1),
            "ref": f"{order['ref']}-F1",
            "status": status,
            "fulfilmentChoiceRef": fc["ref"],
            "type": fc["fulfilmentType"],
            "workflowRef": f"FULFILMENT::{fc['fulfilmentType']}",
            "workflowVersion": 1,
            "createdOn": int(ful_created[f]),
            "updatedOn": int(ful_updated[f]),
            "attributes": [],
            "deliveryType": fc["deliveryType"],
            "eta": "1 day" if fc["deliveryType"] == "EXPRESS" else "3 days",
            "expiryTime": int(ful_updated[f]) + 2 * DAY_MS if status == "AWAITING_WAVE" else None,
            "fromLocation": {"ref": loc} if loc else None,
            "toAddress": fc["deliveryAddress"],
        }

    children["fulfilment_item_status"] = lambda f: {4: "FULFILLED", 5: "REJECTED"}.get(
        int(ord_status[ful_order[f]]), "CREATED"
    )
    children["fulfilment_order"] = lambda f: int(ful_order[f])

    def fulfilments_of(order_row: int) -> list[int]:
        f = int(np.searchsorted(ful_order, order_row))
        return [f] if f < n_ful and ful_order[f] == order_row else []

    children["fulfilments_of"] = fulfilments_of
    tables["fulfilments"] = Table(
        "fulfilments",
        n=n_ful,
        cache=False,
        updated_ms=ful_updated,
        created_ms=ful_created,
        build=build_fulfilment,
        refs=[f"{ord_refs[o]}-F1" for o in ful_order.tolist()],
        ref_key=lambda node: node["ref"],
        filters={
            "type": code_column(["HD_WAREHOUSE", "CC_PFS"], ord_type[ful_order]),
            "status": code_column(list(FULFILMENT_STATUS.values()), ord_status[ful_order] - 2),
            "retailerId": const_column(rid, n_ful),
        },
        extract={
            "type": lambda node: node["type"],
            "status": lambda node: node.get("status"),
            "retailerId": lambda node: rid,
        },
    )
    return Generated(tables=tables, retailer=retailer, catalogue_children=children)
