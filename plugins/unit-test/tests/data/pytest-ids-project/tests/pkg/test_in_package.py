class TestThing:
    def test_broken(self):
        assert 1 == 2
