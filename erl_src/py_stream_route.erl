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
-module(py_stream_route).

%% API.
-export([new_table/0]).
-export([data/3]).
-export([ended/3]).
-export([fault/3]).
-export([exited/2]).

-type mode() :: pull | active.
-type entry() :: {reference(), {stream, pid(), mode()}}.
%% The worker's pending, by_caller and stream tables.
-type tables() :: {ets:tid(), ets:tid(), ets:tid()}.
-export_type([mode/0, tables/0]).

%% API.

%% The credit table of a loop, created by its worker.
-spec new_table() -> ets:tid().
new_table() ->
    ets:new(py_stream_credit, [set, public, {write_concurrency, true}]).

%% `{stream_data, Ref, Items}`: a pull consumer gets the batch as one
%% message (py_stream:next/2 unpacks it), an active one a message per
%% item. A stream that is cancelled or unknown drops the batch.
-spec data(term(), term(), tables()) -> ok.
data(Ref, Items, {Pending, _, Credit} = Tables) ->
    case ets:lookup(Pending, Ref) of
        [{Ref, {stream, _, Mode}} = Entry] ->
            case items(Items, 0) of
                0 ->
                    ok;
                N when is_integer(N) ->
                    case charge(Credit, Ref, N) of
                        ok -> deliver(Mode, Ref, Items);
                        exceeded -> fault(Entry, credit_exceeded, Tables)
                    end;
                improper ->
                    fault(Entry, bad_items, Tables)
            end;
        _ ->
            ok
    end.

%% `{stream_end, Ref, done | {error, Reason}}`: the last message of the
%% stream. The answer to a cancel (the entry is marked cancelled) clears
%% the entry and goes nowhere.
-spec ended(term(), term(), tables()) -> ok.
ended(Ref, End, {Pending, ByCaller, Credit}) ->
    case ets:lookup(Pending, Ref) of
        [{Ref, {stream, Pid, _}}] ->
            true = ets:delete(Pending, Ref),
            true = ets:delete(ByCaller, {Pid, Ref}),
            true = ets:delete(Credit, Ref),
            Ref ! {py_stream, Ref, last(End)},
            ok;
        [{Ref, {cancelled, _}}] ->
            %% Only streams have a credit entry: a stream_end naming a
            %% cancelled task leaves that task's entry alone.
            case ets:take(Credit, Ref) of
                [_] -> true = ets:delete(Pending, Ref), ok;
                [] -> ok
            end;
        _ ->
            %% A task's id, or none: not a stream; nothing to end.
            ok
    end.

%% Ends a stream the port broke (or whose frame was refused): the
%% consumer gets `{error, {bad_stream, Why}}` (or `{error, {atom_limit,
%% Max}}`) and the port is asked to close the generator. The pending entry
%% may already have been taken by the caller.
-spec fault(entry(), term(), tables()) -> ok.
fault({Ref, {stream, Pid, _}}, Why, {Pending, ByCaller, Credit}) ->
    true = ets:delete(Pending, Ref),
    true = ets:delete(ByCaller, {Pid, Ref}),
    true = ets:delete(Credit, Ref),
    Ref ! {py_stream, Ref, {error, reason(Why)}},
    %% The worker's own cancel path: queued if the port is busy.
    gen_server:cast(self(), {cancel, Ref}),
    ok.

%% The port is gone: every live stream of the pending entries ends with
%% Reason, at once.
-spec exited([tuple()], term()) -> ok.
exited(Entries, Reason) ->
    lists:foreach(fun({Ref, {stream, _, _}}) -> Ref ! {py_stream, Ref, {error, Reason}};
                     (_) -> ok
                  end, Entries).

%% Internal.

%% The length of a proper list, without trusting it to be one.
items([], N) -> N;
items([_ | T], N) -> items(T, N + 1);
items(_, _) -> improper.

charge(Credit, Ref, N) ->
    try ets:update_counter(Credit, Ref, {2, -N}) of
        Left when Left >= 0 -> ok;
        _ -> exceeded
    catch
        %% No credit entry: the consumer has just cancelled.
        error:badarg -> ok
    end.

deliver(pull, Ref, Items) ->
    Ref ! {py_stream, Ref, {batch, Items}},
    ok;
deliver(active, Ref, Items) ->
    lists:foreach(fun(Item) -> Ref ! {py_stream, Ref, {data, Item}} end, Items).

last(done) -> done;
last({error, _} = Error) -> Error;
last(Other) -> {error, {bad_stream, {bad_end, Other}}}.

reason({atom_limit, _} = Limit) -> Limit;
reason(Why) -> {bad_stream, Why}.
