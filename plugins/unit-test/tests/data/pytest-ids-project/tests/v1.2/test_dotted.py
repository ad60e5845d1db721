def test_in_dotted_folder():
    assert "v1.2" == "v1.3"
