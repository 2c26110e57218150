"""Predicates the rules and duties share: facts in, a verdict out (who, which ticket, robot or person...)."""
