"""Operator tools run from a checkout against any configured stage; never packaged into the Lambdas."""
