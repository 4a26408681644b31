"""`sagaline doctor`: checks a running deployment and says in plain words what is wrong."""
