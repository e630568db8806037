"""CDK app around chalice.cdk.Chalice: tables, queues + DLQs, secrets, per-function roles, alarms.

Nothing here is packaged into the Lambda functions, and nothing here needs an AWS account to synthesize.
"""

import os as _os

# jsii prints a Node 20 end-of-life banner on the first aws_cdk import; Node is only the jsii runtime here.
_os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
