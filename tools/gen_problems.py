#!/usr/bin/env python3
"""Generates arithmetic word problems with integer answers for reason-scale.

    python3 tools/gen_problems.py [--out tests/data/problems/arith.jsonl] [--seed 20261127]

Deterministic: a fixed seed and Python's integer-only random methods (stable across Python 3
versions) give the same file every time. Each line is {"id", "question", "answer"}; the answer is
computed here, never typed in. The mix runs from one-step problems with small numbers (which a
135M model sometimes gets right) to two-step ones (sums then products, differences, unit prices
with change, exact sharing, rates).
"""
import argparse
import json
import os
import random

NAMES = ["Tom", "Anna", "Sam", "Maria", "Ben", "Lucy", "Omar", "Mia", "Jack", "Nina", "Leo", "Emma"]
# (singular, plural) pairs keep questions grammatical.
FRUITS = [("apple", "apples"), ("orange", "oranges"), ("pear", "pears"), ("lemon", "lemons")]
THINGS = [("pencil", "pencils"), ("marble", "marbles"), ("sticker", "stickers"),
          ("card", "cards"), ("cookie", "cookies"), ("stamp", "stamps")]
CONTAINERS = [("box", "boxes"), ("bag", "bags"), ("jar", "jars"), ("basket", "baskets")]
ITEMS_PRICED = [("notebook", "notebooks"), ("pen", "pens"), ("ticket", "tickets"),
                ("sandwich", "sandwiches"), ("book", "books"), ("mug", "mugs")]


def hours(n):
    return f"{n} hour" if n == 1 else f"{n} hours"


def he(name):
    return "she" if name in ("Anna", "Maria", "Lucy", "Mia", "Nina", "Emma") else "he"


# --- one-step problems with small numbers ----------------------------------------------------

def easy_sum(r):
    n, (_, things) = r.choice(NAMES), r.choice(THINGS)
    a, b = r.randint(2, 9), r.randint(2, 9)
    return (f"{n} has {a} {things} and gets {b} more. How many {things} does {n} have now?",
            a + b)


def easy_difference(r):
    n, (_, things) = r.choice(NAMES), r.choice(THINGS)
    a = r.randint(8, 20)
    b = r.randint(2, a - 2)
    return (f"{n} had {a} {things} and gave away {b}. How many {things} does {n} have left?",
            a - b)


def easy_product(r):
    (_, cs), (_, things) = r.choice(CONTAINERS), r.choice(THINGS)
    a, b = r.randint(2, 6), r.randint(2, 9)
    return (f"There are {a} {cs} with {b} {things} in each. How many {things} are there in all?",
            a * b)


def easy_share(r):
    (_, things) = r.choice(THINGS)
    k, each = r.randint(2, 6), r.randint(2, 9)
    total = k * each
    return (f"{total} {things} are shared equally among {k} children. "
            f"How many {things} does each child get?", each)


def easy_price(r):
    (item, items) = r.choice(ITEMS_PRICED)
    price, k = r.randint(2, 9), r.randint(2, 6)
    return (f"One {item} costs {price} dollars. How much do {k} {items} cost, in dollars?",
            price * k)


# --- two-step problems -----------------------------------------------------------------------

def sum_then_product(r):
    n, (_, fruits), (c, cs) = r.choice(NAMES), r.choice(FRUITS), r.choice(CONTAINERS)
    a, b, w = r.randint(10, 40), r.randint(5, 30), r.randint(2, 9)
    return (f"{n} packs {a} {cs} of {fruits} in the morning and {b} in the afternoon. "
            f"Each {c} weighs {w} kg. How many kilograms of {fruits} did {he(n)} pack?",
            (a + b) * w)


def difference_then_product(r):
    (c, cs), (_, things) = r.choice(CONTAINERS), r.choice(THINGS)
    a = r.randint(15, 50)
    b = r.randint(3, a - 5)
    k = r.randint(3, 12)
    return (f"A shop had {a} {cs} of {things} and sold {b} of them. Each {c} holds {k} {things}. "
            f"How many {things} are left in the shop?", (a - b) * k)


def unit_price_change(r):
    n, (item, items) = r.choice(NAMES), r.choice(ITEMS_PRICED)
    price, k = r.randint(2, 15), r.randint(2, 8)
    bill = next(b for b in (10, 20, 50, 100, 200) if b > price * k)
    return (f"{n} buys {k} {items} at {price} dollars each and pays with a {bill}-dollar bill. "
            f"How much change does {he(n)} get, in dollars?", bill - price * k)


def share_after_sum(r):
    n, (_, things) = r.choice(NAMES), r.choice(THINGS)
    k = r.randint(2, 8)
    total = k * r.randint(3, 15)
    a = r.randint(1, total - 1)
    return (f"{n} collects {a} {things} on Monday and {total - a} on Tuesday, then shares them "
            f"equally among {k} friends. How many {things} does each friend get?", total // k)


def bake_and_pack(r):
    trays, per_tray = r.randint(2, 9), r.choice([6, 8, 10, 12, 24])
    total = trays * per_tray
    boxes = r.choice([d for d in range(2, 13) if total % d == 0 and d != total])
    return (f"A baker makes {trays} trays of {per_tray} muffins and packs them equally into "
            f"{boxes} boxes. How many muffins go in each box?", total // boxes)


def two_speeds(r):
    s1, h1 = r.choice([40, 45, 50, 60, 70, 80]), r.randint(1, 4)
    s2, h2 = r.choice([30, 40, 55, 65, 90]), r.randint(1, 3)
    return (f"A train travels at {s1} km per hour for {hours(h1)} and then at {s2} km per hour "
            f"for {hours(h2)}. How many kilometres does it travel in total?", s1 * h1 + s2 * h2)


def wages(r):
    n = r.choice(NAMES)
    rate, d1, d2 = r.randint(8, 25), r.randint(2, 8), r.randint(2, 8)
    return (f"{n} earns {rate} dollars an hour. {he(n).capitalize()} works {hours(d1)} on Monday "
            f"and {hours(d2)} on Tuesday. How many dollars does {he(n)} earn in total?",
            rate * (d1 + d2))


def three_sum(r):
    (_, fruits) = r.choice(FRUITS)
    a, b, c = r.randint(10, 99), r.randint(10, 99), r.randint(10, 99)
    return (f"A farm picks {a} {fruits} on Monday, {b} on Tuesday and {c} on Wednesday. "
            f"How many {fruits} does it pick in the three days?", a + b + c)


def seats(r):
    rows, per_row, empty = r.randint(5, 20), r.randint(6, 15), r.randint(1, 30)
    return (f"A hall has {rows} rows of {per_row} seats. At a concert {empty} seats stay empty. "
            f"How many people sit in the hall?", rows * per_row - empty)


EASY = [easy_sum, easy_difference, easy_product, easy_share, easy_price]
HARD = [sum_then_product, difference_then_product, unit_price_change, share_after_sum,
        bake_and_pack, two_speeds, wages, three_sum, seats]


def generate(seed, n_easy, n_hard):
    r = random.Random(seed)
    problems = []
    for i in range(n_easy):
        problems.append(EASY[i % len(EASY)](r))
    for i in range(n_hard):
        problems.append(HARD[i % len(HARD)](r))
    out = []
    for i, (question, answer) in enumerate(problems):
        assert isinstance(answer, int) and answer >= 0, (question, answer)
        out.append({"id": f"arith-{i + 1:03d}", "question": question, "answer": answer})
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "problems",
                                                  "arith.jsonl"))
    ap.add_argument("--seed", type=int, default=20261127)
    ap.add_argument("--easy", type=int, default=20, help="one-step problems (default 20)")
    ap.add_argument("--hard", type=int, default=40, help="two-step problems (default 40)")
    args = ap.parse_args()
    problems = generate(args.seed, args.easy, args.hard)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for p in problems:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    print(f"wrote {len(problems)} problems to {os.path.normpath(args.out)}")


if __name__ == "__main__":
    main()
