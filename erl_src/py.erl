%% erlang_python's `py` API on pyport's pool, for code ported from it:
%% same names, arities and option maps where they make sense; results keep
%% pyport's error terms. docs/porting.md maps every function and error
%% shape, and says what differs on purpose (each loop is an OS process of
%% its own: no interpreter state is shared between loops, and a crash
%% costs one loop, never the node).
%%
%% Where erlang_python takes a context pid, this module takes a context
%% (py:context/0,1: a namespace of the caller's own, kept in one loop's
%% port; py_context) or a loop handle (`{pyport_loop, N}`, from
%% py_event_loop_pool:get_loop/0). Without either, a call goes to the
%% caller's loop, so one process's exec, eval and calls share that loop's
%% `__main__`. The default timeout is erlang_python's, 30 s. The shared
%% state is pyport_state's, the event-driven streams py_stream_relay's,
%% the runtime venv and logging settings py_runtime's.
-module(py).

%% API.
-export([call/3]).
-export([call/4]).
-export([call/5]).
-export([cast/3]).
-export([cast/4]).
-export([cast/5]).
-export([spawn_call/3]).
-export([spawn_call/4]).
-export([spawn_call/5]).
-export([await/1]).
-export([await/2]).
-export([async_call/3]).
-export([async_call/4]).
-export([async_await/1]).
-export([async_await/2]).
-export([async_gather/1]).
-export([async_gather/2]).
-export([eval/1]).
-export([eval/2]).
-export([eval/3]).
-export([exec/1]).
-export([exec/2]).
-export([register_function/2]).
-export([register_function/3]).
-export([unregister_function/1]).
-export([reload/1]).
-export([stream/3]).
-export([stream/4]).
-export([stream_eval/1]).
-export([stream_eval/2]).
-export([stream_start/3]).
-export([stream_start/4]).
-export([stream_cancel/1]).
-export([context/0]).
-export([context/1]).
-export([interrupt/1]).
-export([state_fetch/1]).
-export([state_store/2]).
-export([state_remove/1]).
-export([state_keys/0]).
-export([state_clear/0]).
-export([state_incr/1]).
-export([state_incr/2]).
-export([state_decr/1]).
-export([state_decr/2]).
-export([register_pool/2]).
-export([unregister_pool/1]).
-export([memory_stats/0]).
-export([gc/0]).
-export([gc/1]).
-export([tracemalloc_start/0]).
-export([tracemalloc_start/1]).
-export([tracemalloc_stop/0]).
-export([version/0]).
-export([configure_logging/0]).
-export([configure_logging/1]).
-export([activate_venv/1]).
-export([deactivate_venv/0]).
-export([venv_info/0]).
-export([ensure_venv/2]).
-export([ensure_venv/3]).

%% Kwargs: a map, or a keyword list (Elixir's `[a: 1]`).
-type kwargs() :: py_event_loop:kwargs() | [{atom(), term()}].
%% call/5's options with a loop: timeout, kwargs, none_atom, result.
-type call_opts() :: py_event_loop:run_opts().
-type locals() :: #{atom() | binary() => term()} | [{atom(), term()}].
-type call() :: {py_event_loop:py_name(), py_event_loop:py_name(), list()}.
-export_type([kwargs/0, call_opts/0, locals/0, call/0]).

-define(DEFAULT_TIMEOUT, 30000).
%% What a call says when the application is not running.
-define(NOT_STARTED, {loop_unavailable, pyport_not_started}).

%% API.

%% Module.Func(*Args), waited for at most 30 s.
-spec call(py_event_loop:py_name(), py_event_loop:py_name(), list())
    -> py_event_loop:result().
call(Module, Func, Args) ->
    call(Module, Func, Args, #{}).

%% call(Loop, Module, Func, Args) on that loop, or call(Module, Func, Args,
%% Kwargs) on the caller's.
-spec call(py_event_loop:loop() | py_context:context() | py_pool:pool(),
           py_event_loop:py_name(), py_event_loop:py_name(), list())
    -> py_event_loop:result() | {error, py_context:reason() | {pool_not_started, atom()}};
          (py_event_loop:py_name(), py_event_loop:py_name(), list(), kwargs())
    -> py_event_loop:result().
call({pyport_loop, _} = Loop, Module, Func, Args) ->
    call(Loop, Module, Func, Args, #{});
call({py_context, _} = Ctx, Module, Func, Args) ->
    py_context:call(Ctx, Module, Func, Args, #{}, ?DEFAULT_TIMEOUT);
call(Pool, Module, Func, Args) when is_atom(Pool), is_list(Args), not is_list(Func) ->
    %% call(Pool, M, F, A): the third argument is a name, not the Args list.
    pool_call(Pool, Module, Func, Args, #{}, ?DEFAULT_TIMEOUT);
call(Module, Func, Args, Kwargs) ->
    call(Module, Func, Args, Kwargs, ?DEFAULT_TIMEOUT).

%% call(Loop, Module, Func, Args, Opts) with run options (`timeout`,
%% `kwargs`, `none_atom`, `result`), or call(Module, Func, Args, Kwargs,
%% Timeout) on the caller's loop.
-spec call(py_event_loop:loop() | py_context:context(), py_event_loop:py_name(),
           py_event_loop:py_name(), list(), call_opts())
    -> py_event_loop:result() | {error, py_context:reason()};
          (py_pool:pool(), py_event_loop:py_name(), py_event_loop:py_name(), list(), kwargs())
    -> py_event_loop:result() | {error, {pool_not_started, atom()}};
          (py_event_loop:py_name(), py_event_loop:py_name(), list(), kwargs(), timeout())
    -> py_event_loop:result().
call({pyport_loop, _} = Loop, Module, Func, Args, Opts) when is_map(Opts) ->
    py_event_loop:run(Loop, Module, Func, Args,
                      maps:merge(#{timeout => ?DEFAULT_TIMEOUT}, Opts));
call({py_context, _} = Ctx, Module, Func, Args, Opts) when is_map(Opts) ->
    py_context:call(Ctx, Module, Func, Args, context_kwargs(maps:get(kwargs, Opts, #{})),
                    maps:get(timeout, Opts, ?DEFAULT_TIMEOUT));
call(Pool, Module, Func, Args, Kwargs) when is_atom(Pool), is_list(Args), not is_list(Func) ->
    pool_call(Pool, Module, Func, Args, Kwargs, ?DEFAULT_TIMEOUT);
call(Module, Func, Args, Kwargs, Timeout) ->
    case pyport_pool_route:lookup(Module, Func) of
        {ok, Pool} ->
            pool_call(Pool, Module, Func, Args, Kwargs, Timeout);
        default ->
            py_runtime:started(py_event_loop_pool:run(Module, Func, Args,
                                           #{kwargs => Kwargs, timeout => Timeout}))
    end.

%% Fire and forget: Module.Func(*Args) runs, its result is dropped and a
%% failure is logged. Unlike erlang_python's cast, a task that could not
%% be submitted (loop unavailable, overloaded) is reported here.
-spec cast(py_event_loop:py_name(), py_event_loop:py_name(), list())
    -> ok | {error, py_event_loop:reason()}.
cast(Module, Func, Args) ->
    cast(Module, Func, Args, #{}).

-spec cast(py_event_loop:loop() | py_context:context(), py_event_loop:py_name(),
           py_event_loop:py_name(), list())
    -> ok | {error, py_event_loop:reason() | py_context:reason()};
          (py_event_loop:py_name(), py_event_loop:py_name(), list(), kwargs())
    -> ok | {error, py_event_loop:reason()}.
cast({pyport_loop, _} = Loop, Module, Func, Args) ->
    cast(Loop, Module, Func, Args, #{});
cast({py_context, _} = Ctx, Module, Func, Args) ->
    cast(Ctx, Module, Func, Args, #{});
cast(Module, Func, Args, Kwargs) ->
    py_event_loop_pool:spawn_task(Module, Func, Args, pyport_compat:kwargs(Kwargs)).

-spec cast(py_event_loop:loop() | py_context:context(), py_event_loop:py_name(),
           py_event_loop:py_name(), list(), kwargs())
    -> ok | {error, py_event_loop:reason() | py_context:reason()}.
cast({py_context, _} = Ctx, Module, Func, Args, Kwargs) ->
    py_context:cast(Ctx, Module, Func, Args, context_kwargs(Kwargs));
cast(Loop, Module, Func, Args, Kwargs) ->
    py_event_loop:spawn_task(Loop, Module, Func, Args, Kwargs).

%% Starts Module.Func(*Args) and returns at once; await/1,2 collects the
%% result. The task belongs to the calling process: only it can await the
%% reference, and the task is cancelled if it exits first.
-spec spawn_call(py_event_loop:py_name(), py_event_loop:py_name(), list()) -> reference().
spawn_call(Module, Func, Args) ->
    spawn_call(Module, Func, Args, #{}).

-spec spawn_call(py_event_loop:loop(), py_event_loop:py_name(), py_event_loop:py_name(),
                 list()) -> reference();
                (py_event_loop:py_name(), py_event_loop:py_name(), list(), kwargs())
    -> reference().
spawn_call({pyport_loop, _} = Loop, Module, Func, Args) ->
    spawn_call(Loop, Module, Func, Args, #{});
spawn_call(Module, Func, Args, Kwargs) ->
    py_event_loop_pool:create_task(Module, Func, Args, pyport_compat:kwargs(Kwargs)).

-spec spawn_call(py_event_loop:loop(), py_event_loop:py_name(), py_event_loop:py_name(),
                 list(), kwargs()) -> reference().
spawn_call(Loop, Module, Func, Args, Kwargs) ->
    py_event_loop:create_task(Loop, Module, Func, Args, Kwargs).

%% The result of spawn_call/async_call's task, waited for at most 30 s;
%% on timeout the task is cancelled and its result never arrives later.
-spec await(reference()) -> py_event_loop:result().
await(Ref) ->
    await(Ref, ?DEFAULT_TIMEOUT).

-spec await(reference(), timeout()) -> py_event_loop:result().
await(Ref, Timeout) ->
    py_event_loop:await(Ref, Timeout).

%% The reference guide's async worker backend: an asyncio task on the
%% caller's loop (a coroutine function's coroutine runs as a Task; a plain
%% function's result is returned as is). Collect it with await/1,2.
-spec async_call(py_event_loop:py_name(), py_event_loop:py_name(), list()) -> reference().
async_call(Module, Func, Args) ->
    async_call(Module, Func, Args, #{}).

-spec async_call(py_event_loop:py_name(), py_event_loop:py_name(), list(), kwargs())
    -> reference().
async_call(Module, Func, Args, Kwargs) ->
    py_event_loop_pool:create_task(Module, Func, Args, pyport_compat:kwargs(Kwargs)).

%% erlang_python's other name for await/1,2.
-spec async_await(reference()) -> py_event_loop:result().
async_await(Ref) ->
    await(Ref).

-spec async_await(reference(), timeout()) -> py_event_loop:result().
async_await(Ref, Timeout) ->
    await(Ref, Timeout).

%% Runs the calls concurrently; {ok, Results} in the order of Calls, or
%% {error, {gather_failed, [{Position, Reason}]}} naming every failure.
-spec async_gather([call()]) -> {ok, list()} | {error, {gather_failed, list()}}.
async_gather(Calls) ->
    async_gather(Calls, ?DEFAULT_TIMEOUT).

%% Timeout applies to each await in turn, as in erlang_python.
-spec async_gather([call()], timeout()) -> {ok, list()} | {error, {gather_failed, list()}}.
async_gather(Calls, Timeout) when is_list(Calls) ->
    Refs = [async_call(M, F, A) || {M, F, A} <- Calls],
    length(Refs) =:= length(Calls) orelse error({badarg, {calls, Calls}}),
    Results = [await(Ref, Timeout) || Ref <- Refs],
    case [{N, Reason} || {N, {error, Reason}} <- lists:enumerate(Results)] of
        [] -> {ok, [Value || {ok, Value} <- Results]};
        Failed -> {error, {gather_failed, Failed}}
    end.

%% Evaluates a Python expression in the caller's loop's `__main__`.
-spec eval(py_event_loop:source()) -> py_event_loop:result().
eval(Code) ->
    eval(Code, #{}).

%% eval(Loop, Code) on that loop, or eval(Code, Locals): with local
%% bindings, e.g. eval(<<"x * y">>, #{x => 5, y => 6}).
-spec eval(py_event_loop:loop() | py_context:context(), py_event_loop:source())
    -> py_event_loop:result() | {error, py_context:reason()};
          (py_event_loop:source(), locals()) -> py_event_loop:result().
eval({pyport_loop, _} = Loop, Code) ->
    eval(Loop, Code, #{});
eval({py_context, _} = Ctx, Code) ->
    py_context:eval(Ctx, Code, #{}, ?DEFAULT_TIMEOUT);
eval(Code, Locals) ->
    eval(Code, Locals, ?DEFAULT_TIMEOUT).

-spec eval(py_event_loop:loop() | py_context:context(), py_event_loop:source(), locals())
    -> py_event_loop:result() | {error, py_context:reason()};
          (py_event_loop:source(), locals(), timeout()) -> py_event_loop:result().
eval({pyport_loop, _} = Loop, Code, Locals) ->
    py_event_loop:eval(Loop, Code, eval_opts(Locals, ?DEFAULT_TIMEOUT));
eval({py_context, _} = Ctx, Code, Locals) ->
    py_context:eval(Ctx, Code, context_kwargs(Locals), ?DEFAULT_TIMEOUT);
eval(Code, Locals, Timeout) ->
    py_runtime:started(py_event_loop_pool:eval(Code, eval_opts(Locals, Timeout))).

%% Runs Python statements in the caller's loop's `__main__`.
-spec exec(py_event_loop:source()) -> ok | {error, py_event_loop:reason()}.
exec(Code) ->
    py_runtime:started(py_event_loop_pool:exec(Code, #{timeout => ?DEFAULT_TIMEOUT})).

-spec exec(py_event_loop:loop() | py_context:context(), py_event_loop:source())
    -> ok | {error, py_event_loop:reason() | py_context:reason()}.
exec({py_context, _} = Ctx, Code) ->
    py_context:exec(Ctx, Code, ?DEFAULT_TIMEOUT);
exec(Loop, Code) ->
    py_event_loop:exec(Loop, Code, #{timeout => ?DEFAULT_TIMEOUT}).

%% Makes Fun callable from Python as `erlang.call(Name, ...)`,
%% `erlang.<Name>(...)` or `from erlang import <Name>`; it gets the
%% arguments as one list.
-spec register_function(py_callback:name(), fun((list()) -> term()))
    -> ok | {error, not_started}.
register_function(Name, Fun) when is_function(Fun, 1) ->
    py_callback:register(Name, Fun).

%% The same for Module:Function(Args).
-spec register_function(py_callback:name(), module(), atom()) -> ok | {error, not_started}.
register_function(Name, Module, Function) when is_atom(Module), is_atom(Function) ->
    py_callback:register(Name, {Module, Function}).

-spec unregister_function(py_callback:name()) -> ok | {error, not_started}.
unregister_function(Name) ->
    py_callback:unregister(Name).

%% Reloads a Python module on every loop that has imported it.
-spec reload(py_event_loop:py_name())
    -> ok | {error, [{pos_integer(), py_event_loop:reason()}]}.
reload(Module) ->
    py_event_loop_pool:reload(Module).

%% Every item of the generator (sync or async) or other lazy iterable
%% that Module.Func(*Args) returns, collected: {ok, Items} once it ends.
%% Items come under pyport's flow control (py_stream, docs/streams.md);
%% waiting more than 30 s for one item (erlang_python's wait) cancels the
%% stream and is {error, timeout}.
-spec stream(py_event_loop:py_name(), py_event_loop:py_name(), list())
    -> {ok, list()} | {error, py_stream:reason()}.
stream(Module, Func, Args) ->
    stream(Module, Func, Args, #{}).

-spec stream(py_event_loop:py_name(), py_event_loop:py_name(), list(), kwargs())
    -> {ok, list()} | {error, py_stream:reason()}.
stream(Module, Func, Args, Kwargs) ->
    Stream = py_event_loop_pool:stream(Module, Func, Args, #{kwargs => Kwargs}),
    py_stream:to_list(Stream, ?DEFAULT_TIMEOUT).

%% Every item of the iterable that expression Code evaluates to in the
%% caller's loop's `__main__` (a generator expression, say), collected as
%% stream/3 does: {ok, Items}.
-spec stream_eval(py_event_loop:source()) -> {ok, list()} | {error, py_stream:reason()}.
stream_eval(Code) ->
    stream_eval(Code, #{}).

-spec stream_eval(py_event_loop:source(), locals())
    -> {ok, list()} | {error, py_stream:reason()}.
stream_eval(Code, Locals) ->
    case py_event_loop_pool:get_loop() of
        {ok, Loop} ->
            Stream = py_event_loop:stream(Loop, 'erlang._compat', eval_iterable,
                                          [source(Code), context_kwargs(Locals)], #{}),
            py_stream:to_list(Stream, ?DEFAULT_TIMEOUT);
        {error, not_started} ->
            {error, ?NOT_STARTED}
    end.

%% erlang_python's event-driven stream: returns at once; the items of the
%% generator Module.Func(*Args) come as `{py_stream, Ref, {data, Item}}`
%% messages to the caller (or to Opts' `owner`), then `{py_stream, Ref,
%% done}` or `{py_stream, Ref, {error, Reason}}` (py_stream_relay).
-spec stream_start(py_event_loop:py_name(), py_event_loop:py_name(), list())
    -> {ok, reference()} | {error, term()}.
stream_start(Module, Func, Args) ->
    stream_start(Module, Func, Args, #{}).

-spec stream_start(py_event_loop:py_name(), py_event_loop:py_name(), list(),
                   py_stream_relay:options()) -> {ok, reference()} | {error, term()}.
stream_start(Module, Func, Args, Opts) when is_map(Opts) ->
    case py_event_loop_pool:get_loop() of
        {ok, Loop} -> py_stream_relay:start(Loop, Module, Func, Args, Opts);
        {error, not_started} -> {error, ?NOT_STARTED}
    end.

%% Stops a stream_start/3,4 stream; its owner gets `{py_stream, Ref,
%% {error, cancelled}}` unless it had ended already.
-spec stream_cancel(reference()) -> ok.
stream_cancel(Ref) ->
    py_stream_relay:cancel(Ref).

%% The caller's own context on its loop (py:context/1 for loop N): a
%% Python namespace that keeps what exec defines for the caller's later
%% calls on it, released when the caller exits (py_context).
-spec context() -> py_context:context().
context() ->
    case py_event_loop_pool:get_loop() of
        {ok, Loop} -> context_of(Loop);
        {error, not_started} -> error({py_context, ?NOT_STARTED})
    end.

-spec context(pos_integer()) -> py_context:context().
context(N) when is_integer(N), N > 0 ->
    case pyport_registry:num_loops() of
        undefined -> error({py_context, ?NOT_STARTED});
        Loops when N =< Loops -> context_of({pyport_loop, N});
        Loops -> error({badarg, {context, N, {num_loops, Loops}}})
    end.

%% erlang_python interrupts a context's running code from any process. A
%% port runs one loop per OS process, where the call's own timeout does it
%% (a plain function is interrupted at its deadline, the context stays
%% usable): this cancels a task started with spawn_call/async_call, by the
%% process that started it, and is {error, cancelled} for its await.
-spec interrupt(reference()) -> ok | not_running.
interrupt(Ref) when is_reference(Ref) ->
    case py_event_loop:await(Ref, 0) of
        {error, timeout} -> ok;
        {error, unknown_task} -> not_running;
        _Finished -> not_running
    end.

%% The shared state (pyport_state): one store for every loop, kept in
%% Erlang, so it survives port restarts. Python: erlang.state_get/set/...
-spec state_fetch(term()) -> {ok, term()} | {error, not_found}.
state_fetch(Key) ->
    pyport_state:fetch(Key).

-spec state_store(term(), term()) -> ok | {error, pyport_state:error()}.
state_store(Key, Value) ->
    pyport_state:store(Key, Value).

-spec state_remove(term()) -> ok | {error, pyport_state:error()}.
state_remove(Key) ->
    pyport_state:remove(Key).

-spec state_keys() -> [term()].
state_keys() ->
    pyport_state:keys().

-spec state_clear() -> ok | {error, pyport_state:error()}.
state_clear() ->
    pyport_state:clear().

-spec state_incr(term()) -> integer() | {error, pyport_state:error()}.
state_incr(Key) ->
    pyport_state:incr(Key, 1).

-spec state_incr(term(), integer()) -> integer() | {error, pyport_state:error()}.
state_incr(Key, Amount) ->
    pyport_state:incr(Key, Amount).

-spec state_decr(term()) -> integer() | {error, pyport_state:error()}.
state_decr(Key) ->
    pyport_state:incr(Key, -1).

-spec state_decr(term(), integer()) -> integer() | {error, pyport_state:error()}.
state_decr(Key, Amount) when is_integer(Amount) ->
    pyport_state:incr(Key, -Amount).

%% Routes call/3,4,5 of Module (or of {Module, Func}) to named pool Pool
%% (py_pool, started by the user), without changing the call sites.
-spec register_pool(py_pool:pool(), py_event_loop:py_name()
                                    | {py_event_loop:py_name(), py_event_loop:py_name()})
    -> ok.
register_pool(Pool, Target) when is_atom(Pool) ->
    pyport_pool_route:register(Pool, Target).

-spec unregister_pool(py_event_loop:py_name()
                      | {py_event_loop:py_name(), py_event_loop:py_name()}) -> ok.
unregister_pool(Target) ->
    pyport_pool_route:unregister(Target).

%% The collector's statistics of the caller's loop (erlang_python's keys:
%% gc_stats, gc_count, gc_threshold, and traced_memory_current/peak while
%% tracemalloc traces).
-spec memory_stats() -> {ok, map()} | {error, term()}.
memory_stats() ->
    py_runtime:memory_stats().

%% A full collection on every loop; {ok, Unreachable} summed over them.
-spec gc() -> {ok, non_neg_integer()} | {error, term()}.
gc() ->
    gc(2).

-spec gc(0..2) -> {ok, non_neg_integer()} | {error, term()}.
gc(Generation) when Generation >= 0, Generation =< 2 ->
    py_runtime:gc(Generation).

%% tracemalloc on every loop (memory_stats/0 then has traced_memory_*).
-spec tracemalloc_start() -> ok | {error, term()}.
tracemalloc_start() ->
    tracemalloc_start(1).

-spec tracemalloc_start(pos_integer()) -> ok | {error, term()}.
tracemalloc_start(Frames) when is_integer(Frames), Frames > 0 ->
    py_runtime:trace_memory(Frames).

-spec tracemalloc_stop() -> ok | {error, term()}.
tracemalloc_stop() ->
    py_runtime:trace_memory(0).

%% The caller's loop's Python version (sys.version).
-spec version() -> {ok, binary()} | {error, term()}.
version() ->
    py_runtime:version().

%% Python's log records at `level` (default debug) and above, on every
%% loop, now and after port restarts (pyport forwards them to the OTP
%% logger already; its formatter formats them).
-spec configure_logging() -> ok | {error, term()}.
configure_logging() ->
    configure_logging(#{}).

-spec configure_logging(#{level => py_runtime:log_level()}) -> ok | {error, term()}.
configure_logging(Opts) ->
    py_runtime:configure_logging(Opts).

%% The virtualenv of every loop of the default pool: its `venv` setting,
%% applied by restarting each loop (py_runtime; docs/porting.md).
-spec activate_venv(file:filename_all()) -> ok | {error, term()}.
activate_venv(Path) ->
    py_runtime:activate_venv(Path).

-spec deactivate_venv() -> ok | {error, term()}.
deactivate_venv() ->
    py_runtime:deactivate_venv().

-spec venv_info() -> {ok, map()}.
venv_info() ->
    py_runtime:venv_info().

%% Makes (if needed) and fills the venv at Path from RequirementsFile
%% (pyport's pyport_venv, with the port's own Python), then activates it.
-spec ensure_venv(file:filename_all(), file:filename_all()) -> ok | {error, term()}.
ensure_venv(Path, RequirementsFile) ->
    ensure_venv(Path, RequirementsFile, []).

-spec ensure_venv(file:filename_all(), file:filename_all(), list()) -> ok | {error, term()}.
ensure_venv(Path, RequirementsFile, Opts) ->
    py_runtime:ensure_venv(Path, RequirementsFile, Opts).

%% Internal.

context_of(Loop) ->
    case py_context:for_process(Loop) of
        {ok, Ctx} -> Ctx;
        {error, Reason} -> error({py_context, Reason})
    end.

pool_call(Pool, Module, Func, Args, Kwargs, Timeout) ->
    case py_pool:get_loop(Pool) of
        {ok, Loop} ->
            py_event_loop:run(Loop, Module, Func, Args,
                              #{kwargs => pyport_compat:kwargs(Kwargs), timeout => Timeout});
        {error, not_started} ->
            {error, {pool_not_started, Pool}}
    end.

context_kwargs(Map) ->
    case pyport_compat:kwargs(Map) of
        Kwargs when is_map(Kwargs) -> Kwargs;
        _ -> error({badarg, {kwargs, Map}})
    end.

source(Code) when is_binary(Code) -> Code;
source(Code) when is_list(Code) -> unicode:characters_to_binary(Code);
source(Code) -> error({badarg, {source, Code}}).

eval_opts(Locals, Timeout) ->
    case pyport_compat:kwargs(Locals) of
        Map when is_map(Map), map_size(Map) =:= 0 -> #{timeout => Timeout};
        Map when is_map(Map) -> #{timeout => Timeout, locals => Map};
        _ -> error({badarg, {locals, Locals}})
    end.
