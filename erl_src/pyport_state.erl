%% erlang_python's shared state (`py:state_*`, Python's `erlang.state_*`;
%% docs/porting.md, "Shared state"): one key-value store for every loop,
%% kept on the Erlang side so that it survives a port restart.
%%
%% An ETS table owned by this process (a child of pyport_sup, after the
%% loops, so that no loop restart touches it). Reads go to the table
%% directly; writes go through this process, so that the bounds (number of
%% keys, size of a value) hold however many writers race. Python reaches
%% it through the internal callback `_pyport_state`, registered here.
-module(pyport_state).
-behaviour(gen_server).

%% API.
-export([fetch/1]).
-export([store/2]).
-export([remove/1]).
-export([keys/0]).
-export([clear/0]).
-export([incr/2]).
-export([max_keys/0]).
-export([max_value_bytes/0]).

%% Internal API.
-export([start_link/0]).
-export([python/1]).

%% gen_server.
-export([init/1]).
-export([handle_call/3]).
-export([handle_cast/2]).

-define(TABLE, pyport_state).
-define(CALLBACK, '_pyport_state').
-define(MAX_KEYS, 100000).
-define(MAX_VALUE_BYTES, 1048576).

-type error() :: {state_full, pos_integer()}
               | {state_value_too_large, pos_integer(), pos_integer()}
               | {not_a_counter, term()}
               | not_started.
-export_type([error/0]).

%% API.

-spec fetch(term()) -> {ok, term()} | {error, not_found}.
fetch(Key) ->
    try ets:lookup(?TABLE, Key) of
        [{_, Value}] -> {ok, Value};
        [] -> {error, not_found}
    catch
        error:badarg -> {error, not_found}
    end.

-spec store(term(), term()) -> ok | {error, error()}.
store(Key, Value) ->
    Size = erlang:external_size(Value),
    case Size > ?MAX_VALUE_BYTES of
        true -> {error, {state_value_too_large, Size, ?MAX_VALUE_BYTES}};
        false -> server_call({store, Key, Value})
    end.

-spec remove(term()) -> ok | {error, error()}.
remove(Key) ->
    server_call({remove, Key}).

-spec keys() -> [term()].
keys() ->
    try
        ets:select(?TABLE, [{{'$1', '_'}, [], ['$1']}])
    catch
        error:badarg -> []
    end.

-spec clear() -> ok | {error, error()}.
clear() ->
    server_call(clear).

%% Adds Amount to the integer under Key (absent: 0); the new value.
-spec incr(term(), integer()) -> integer() | {error, error()}.
incr(Key, Amount) when is_integer(Amount) ->
    server_call({incr, Key, Amount}).

-spec max_keys() -> pos_integer().
max_keys() -> ?MAX_KEYS.

-spec max_value_bytes() -> pos_integer().
max_value_bytes() -> ?MAX_VALUE_BYTES.

%% Internal API.

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% The `_pyport_state` callback: [Op | Args] from erlang._state.
-spec python(list()) -> term().
python([<<"fetch">>, Key]) -> fetch(Key);
python([<<"store">>, Key, Value]) -> store(Key, Value);
python([<<"remove">>, Key]) -> remove(Key);
python([<<"keys">>]) -> keys();
python([<<"clear">>]) -> clear();
python([<<"incr">>, Key, Amount]) when is_integer(Amount) -> incr(Key, Amount);
python(Other) -> error({badarg, {state_request, Other}}).

%% gen_server.

-spec init([]) -> {ok, undefined}.
init([]) ->
    _ = ets:new(?TABLE, [named_table, protected, set, {read_concurrency, true}]),
    ok = py_callback:register(?CALLBACK, {?MODULE, python}),
    {ok, undefined}.

-spec handle_call(term(), gen_server:from(), undefined)
    -> {reply, term(), undefined}.
handle_call({store, Key, Value}, _From, State) ->
    {reply, if_room(Key, fun() -> true = ets:insert(?TABLE, {Key, Value}), ok end), State};
handle_call({remove, Key}, _From, State) ->
    true = ets:delete(?TABLE, Key),
    {reply, ok, State};
handle_call(clear, _From, State) ->
    true = ets:delete_all_objects(?TABLE),
    {reply, ok, State};
handle_call({incr, Key, Amount}, _From, State) ->
    Reply = if_room(Key, fun() ->
                                 try ets:update_counter(?TABLE, Key, Amount, {Key, 0})
                                 catch error:badarg -> {error, {not_a_counter, Key}}
                                 end
                         end),
    {reply, Reply, State}.

-spec handle_cast(term(), undefined) -> {noreply, undefined}.
handle_cast(_Msg, State) ->
    {noreply, State}.

%% Internal.

if_room(Key, Write) ->
    case ets:member(?TABLE, Key) orelse ets:info(?TABLE, size) < ?MAX_KEYS of
        true -> Write();
        false -> {error, {state_full, ?MAX_KEYS}}
    end.

server_call(Request) ->
    try
        gen_server:call(?MODULE, Request)
    catch
        exit:{noproc, _} -> {error, not_started}
    end.
