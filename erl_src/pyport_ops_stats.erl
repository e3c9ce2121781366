%% Task timings of one loop (its port's lifetime): how many tasks were
%% awaited, their latency (submission to result, as the caller saw it)
%% and their queue time (submission until the port took the packet:
%% waiting for a restarting loop, backing off a busy port). Callers write
%% a `counters` array that the worker makes (#py_loop.stats), so the hot
%% path costs two clock reads and a few atomic adds, never a message.
-module(pyport_ops_stats).

%% API.
-export([new/0]).
-export([record/3]).
-export([read/1]).

-opaque ref() :: counters:counters_ref().
-type stats() :: #{count := non_neg_integer(),
                   latency_us_avg := non_neg_integer(),
                   latency_us_max := non_neg_integer(),
                   queue_us_avg := non_neg_integer(),
                   queue_us_max := non_neg_integer()}.
-export_type([ref/0, stats/0]).

-define(COUNT, 1).
-define(LATENCY_SUM, 2).
-define(LATENCY_MAX, 3).
-define(QUEUE_SUM, 4).
-define(QUEUE_MAX, 5).

%% API.

-spec new() -> ref().
new() ->
    counters:new(5, [write_concurrency]).

%% One awaited task: Latency and Queue in microseconds.
-spec record(ref() | undefined, non_neg_integer(), non_neg_integer()) -> ok.
record(undefined, _, _) ->
    ok;
record(Ref, Latency, Queue) ->
    counters:add(Ref, ?COUNT, 1),
    counters:add(Ref, ?LATENCY_SUM, Latency),
    counters:add(Ref, ?QUEUE_SUM, Queue),
    %% The maxima are approximate under concurrent writers (a read and a
    %% put), which is good enough for a gauge.
    max_put(Ref, ?LATENCY_MAX, Latency),
    max_put(Ref, ?QUEUE_MAX, Queue).

-spec read(ref() | undefined) -> stats().
read(undefined) ->
    #{count => 0, latency_us_avg => 0, latency_us_max => 0,
      queue_us_avg => 0, queue_us_max => 0};
read(Ref) ->
    Count = counters:get(Ref, ?COUNT),
    Avg = fun(Slot) when Count > 0 -> counters:get(Ref, Slot) div Count;
             (_) -> 0
          end,
    #{count => Count,
      latency_us_avg => Avg(?LATENCY_SUM),
      latency_us_max => counters:get(Ref, ?LATENCY_MAX),
      queue_us_avg => Avg(?QUEUE_SUM),
      queue_us_max => counters:get(Ref, ?QUEUE_MAX)}.

%% Internal.

max_put(Ref, Slot, Value) ->
    case counters:get(Ref, Slot) < Value of
        true -> counters:put(Ref, Slot, Value);
        false -> ok
    end.
