"""Fan out over a listing step's output: list the shards, score each (at most 2 at once), keep the best, and post
to a webhook when the run fails.

SLACK_WEBHOOK=https://hooks.slack.com/services/... trainflow submit examples/fan-out/pipeline.py -p shards=6 --wait
"""

from trainflow.pipelines import ITEM, Call, Notify, Param, Pipeline, output, param

PIPELINE = Pipeline(
    name="fan-out",
    description="Score every shard a listing step finds, two at a time; notify on failure.",
    params=(
        Param("shards", 6, "How many shards the listing step finds.", type="int", minimum=0),
        Param("fail", "", "A shard to fail on purpose (e.g. shard-002), to see the notification."),
    ),
    steps=(
        Call(
            name="list",
            function="shards:list_shards",
            inputs={"count": param("shards"), "fail": param("fail")},
            outputs=("shards",),
        ),
        Call(
            name="score",
            function="shards:score",
            for_each=output("list", "shards"),
            parallelism=2,
            inputs={"shard": ITEM["shard"], "rows": ITEM["rows"], "fail": ITEM["fail"]},
            outputs=("score",),
            kinds={"score": "metric"},
        ),
        Call(
            name="best", function="shards:best", inputs={"scores": output("score", "score")}, outputs=("best", "score")
        ),
    ),
    on_exit=(Notify(url_env="SLACK_WEBHOOK", url_secret=("slack-webhook", "url"), on=("Failed",)),),
)
