%% The worker's side of streams (docs/streams.md): routing what the port
%% sends on a stream to its consumer, and holding the port to the credit
%% the consumer granted.
%%
%% A stream lives in its loop's pending table as `{Ref, {stream, Pid,
%% Mode}}` (so that the worker's caller monitors, cancel grace and crash
%% handling cover it like a task) and in the loop's stream table as `{Ref,
%% Credit}`: the items the port may still send. Everything here runs in
%% the worker, on packets decoded as untrusted input: items beyond the
%% credit, an item list that is not a list, or an end that is neither
%% `done` nor `{error, _}` end the stream with `{error, {bad_stream, Why}}`
%% and have the port close the generator, instead of reaching the consumer.
-module(pyport_stream_route).
-behaviour(pyport_route).

%% pyport_route.
-export([tags/0]).
-export([route/2]).

%% API.
-export([new_table/0]).
-export([data/3]).
-export([ended/3]).
-export([fault/4]).

-type mode() :: pyport_calls:stream_mode().
-export_type([mode/0]).

%% pyport_route.

-spec tags() -> [atom()].
tags() ->
    [stream_data, stream_end].

-spec route(tuple(), pyport_route:context()) -> ok | malformed.
route({stream_data, Ref, Items}, #{loop := Loop}) ->
    data(Loop, Ref, Items);
route({stream_end, Ref, End}, #{loop := Loop}) ->
    ended(Loop, Ref, End);
route(_, _) ->
    malformed.

%% API.

%% The credit table of a loop, created by its worker.
-spec new_table() -> ets:tid().
new_table() ->
    ets:new(py_stream_credit, [set, public, {write_concurrency, true}]).

%% `{stream_data, Ref, Items}`: a pull consumer gets the batch as one
%% message (py_stream:next/2 unpacks it), an active one a message per
%% item, sent to its pid: the alias of an active stream takes one message,
%% the last (see pyport_calls). A stream that is cancelled or unknown
%% drops the batch.
-spec data(pyport_calls:loop(), term(), term()) -> ok.
data(Loop, Ref, Items) ->
    case pyport_calls:stream(Loop, Ref) of
        {stream, Owner, Mode} ->
            case items(Items, 0) of
                0 ->
                    ok;
                N when is_integer(N) ->
                    case pyport_calls:charge(Loop, Ref, N) of
                        ok -> deliver(Mode, Owner, Ref, Items);
                        exceeded -> fault(Loop, Ref, {stream, Owner, Mode}, credit_exceeded)
                    end;
                improper ->
                    fault(Loop, Ref, {stream, Owner, Mode}, bad_items)
            end;
        none ->
            ok
    end.

%% `{stream_end, Ref, done | {error, Reason}}`: the last message of the
%% stream. The answer to a cancel goes nowhere.
-spec ended(pyport_calls:loop(), term(), term()) -> ok.
ended(Loop, Ref, End) ->
    case pyport_calls:take_stream(Loop, Ref) of
        {stream, _, _} ->
            Ref ! {py_stream, Ref, last(End)},
            ok;
        _ ->
            ok
    end.

%% Ends a stream the port broke (or whose frame was refused), whose
%% entry `Taken` the caller has found: the consumer gets `{error,
%% {bad_stream, Why}}` (or `{error, {atom_limit, Max}}`) and the port is
%% asked to close the generator.
-spec fault(pyport_calls:loop(), reference(), pyport_calls:taken(), term()) -> ok.
fault(Loop, Ref, {stream, _, _}, Why) ->
    _ = pyport_calls:take(Loop, Ref),
    Ref ! {py_stream, Ref, {error, reason(Why)}},
    _ = pyport_calls:send(Loop, pyport_wire:cancel(Ref)),
    ok;
fault(_Loop, _Ref, _, _Why) ->
    ok.

%% Internal.

%% The length of a proper list, without trusting it to be one.
items([], N) -> N;
items([_ | T], N) -> items(T, N + 1);
items(_, _) -> improper.

deliver(pull, _Owner, Ref, Items) ->
    Ref ! {py_stream, Ref, {batch, Items}},
    ok;
deliver(active, Owner, Ref, Items) ->
    lists:foreach(fun(Item) -> Owner ! {py_stream, Ref, {data, Item}} end, Items).

last(done) -> done;
last({error, _} = Error) -> Error;
last(Other) -> {error, {bad_stream, {bad_end, Other}}}.

reason({atom_limit, _} = Limit) -> Limit;
reason(Why) -> {bad_stream, Why}.
