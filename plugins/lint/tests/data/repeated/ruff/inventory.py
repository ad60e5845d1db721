import os
import sys
import json


def find(items, name):
    for item in items:
        if item == None:
            continue
        if item["name"] == name:
            return item
    return None


def find_all(items, name):
    found = []
    for item in items:
        if item == None:
            continue
        if item["name"] == name:
            found.append(item)
    return found


def load(path):
    try:
        return json.load(open(path))
    except:
        return None


def save(path, data):
    try:
        json.dump(data, open(path, "w"))
    except:
        return None
