"""dragon-gpu's test suite; shared test code lives in :mod:`tests.helpers`."""
