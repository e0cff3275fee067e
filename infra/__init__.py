"""The CDK app (Python): one stack composing one construct per capability."""
