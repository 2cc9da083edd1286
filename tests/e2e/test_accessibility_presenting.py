"""Accessible to every student, in a class (see test_accessibility.py): axe-core's WCAG
2.0/2.1 A and AA rules find no violation on the Class page as the teacher and a student see
it, on a laptop and a phone. Every page in the presentation look is checked where
test_pages.py opens it anyway (the presentation switch, after the normal look)."""

from __future__ import annotations

import pytest

from .test_accessibility import violations


@pytest.mark.e2e
def test_the_class_views_pass_on_a_laptop_and_a_phone(people, app_data):
    """The Class page as the teacher (presenting, a question on screen with its live tally)
    and as a student (the question and the answer buttons) sees it, at 1400x1000 and at
    390x844; the visitor's Class page is in the page table's test above."""
    teacher, student = people(), people()
    teacher.open("class", f"teacher={app_data['teacher_key']}&present=1")
    teacher.click("Start a class")
    code = teacher.main.locator(".cae-code").inner_text().replace(" ", "")
    teacher.pick("stSelectbox", "Question", "tiles-airplane")
    teacher.click("Ask it")
    student.open("class", f"join={code}")
    student.sees("Which one?")
    student.click("A")
    teacher.sees("1 answer: A: 1, B: 0.", timeout=30_000)
    for who, person in (("teacher", teacher), ("student", student)):
        for width, height in ((1400, 1000), (390, 844)):
            person.page.set_viewport_size({"width": width, "height": height})
            person.no_exception()
            found = violations(person)
            assert not found, f"the {who}'s Class page at {width}x{height}:\n" + "\n".join(found)
