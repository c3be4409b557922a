import unittest

from textkit.greet import farewell, greeting
from textkit.report import footer, line_item
from textkit.slugs import dated_slug, slug


class GreetTest(unittest.TestCase):
    def test_greeting_by_hour(self):
        self.assertEqual(greeting("Ada", 9), "Good morning, Ada!")
        self.assertEqual(greeting("Ada", 13), "Good afternoon, Ada!")
        self.assertEqual(greeting("Ada", 20), "Good evening, Ada!")

    def test_farewell(self):
        self.assertEqual(farewell("Bo"), "Goodbye, Bo.")


class ReportTest(unittest.TestCase):
    def test_line_item_is_aligned(self):
        self.assertEqual(line_item("tea", 3, 2.5), "tea          3 x    2.50 =     7.50")

    def test_footer(self):
        self.assertEqual(footer(7.5, 3), "3 item(s), total 7.50")


class SlugTest(unittest.TestCase):
    def test_slug(self):
        self.assertEqual(slug("Hello, World!"), "hello-world")

    def test_dated_slug_pads(self):
        self.assertEqual(dated_slug("Release Notes", 2024, 3), "2024-03-release-notes")


if __name__ == "__main__":
    unittest.main()
