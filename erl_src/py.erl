%% erlang_python's `py` API on pyport's pool, for code ported from it:
%% same names, arities and option maps where they make sense; results keep
%% pyport's error terms. docs/porting.md maps every function and error
%% shape, and says what differs on purpose (each loop is an OS process of
%% its own: no interpreter state is shared between loops, and a crash
%% costs one loop, never the node).
%%
%% Where erlang_python takes a context pid, this module takes a loop handle
%% (`{pyport_loop, N}`, from py_event_loop_pool:get_loop/0). Without one,
%% a call goes to the caller's loop, so one process's exec, eval and calls
%% share one `__main__`. The default timeout is erlang_python's, 30 s.
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

%% Kwargs: a map, or a keyword list (Elixir's `[a: 1]`).
-type kwargs() :: py_event_loop:kwargs() | [{atom(), term()}].
%% call/5's options with a loop: timeout, kwargs, none_atom, result.
-type call_opts() :: py_event_loop:run_opts().
-type locals() :: #{atom() | binary() => term()} | [{atom(), term()}].
-type call() :: {py_event_loop:py_name(), py_event_loop:py_name(), list()}.
-export_type([kwargs/0, call_opts/0, locals/0, call/0]).

-define(DEFAULT_TIMEOUT, 30000).

%% API.

%% Module.Func(*Args), waited for at most 30 s.
-spec call(py_event_loop:py_name(), py_event_loop:py_name(), list())
    -> py_event_loop:result().
call(Module, Func, Args) ->
    call(Module, Func, Args, #{}).

%% call(Loop, Module, Func, Args) on that loop, or call(Module, Func, Args,
%% Kwargs) on the caller's.
-spec call(py_event_loop:loop(), py_event_loop:py_name(), py_event_loop:py_name(), list())
    -> py_event_loop:result();
          (py_event_loop:py_name(), py_event_loop:py_name(), list(), kwargs())
    -> py_event_loop:result().
call({pyport_loop, _} = Loop, Module, Func, Args) ->
    call(Loop, Module, Func, Args, #{});
call(Module, Func, Args, Kwargs) ->
    call(Module, Func, Args, Kwargs, ?DEFAULT_TIMEOUT).

%% call(Loop, Module, Func, Args, Opts) with run options (`timeout`,
%% `kwargs`, `none_atom`, `result`), or call(Module, Func, Args, Kwargs,
%% Timeout) on the caller's loop.
-spec call(py_event_loop:loop(), py_event_loop:py_name(), py_event_loop:py_name(), list(),
           call_opts()) -> py_event_loop:result();
          (py_event_loop:py_name(), py_event_loop:py_name(), list(), kwargs(), timeout())
    -> py_event_loop:result().
call({pyport_loop, _} = Loop, Module, Func, Args, Opts) when is_map(Opts) ->
    py_event_loop:run(Loop, Module, Func, Args,
                      maps:merge(#{timeout => ?DEFAULT_TIMEOUT}, Opts));
call(Module, Func, Args, Kwargs, Timeout) ->
    py_event_loop_pool:run(Module, Func, Args,
                           #{kwargs => Kwargs, timeout => Timeout}).

%% Fire and forget: Module.Func(*Args) runs, its result is dropped and a
%% failure is logged. Unlike erlang_python's cast, a task that could not
%% be submitted (loop unavailable, overloaded) is reported here.
-spec cast(py_event_loop:py_name(), py_event_loop:py_name(), list())
    -> ok | {error, py_event_loop:reason()}.
cast(Module, Func, Args) ->
    cast(Module, Func, Args, #{}).

-spec cast(py_event_loop:loop(), py_event_loop:py_name(), py_event_loop:py_name(), list())
    -> ok | {error, py_event_loop:reason()};
          (py_event_loop:py_name(), py_event_loop:py_name(), list(), kwargs())
    -> ok | {error, py_event_loop:reason()}.
cast({pyport_loop, _} = Loop, Module, Func, Args) ->
    cast(Loop, Module, Func, Args, #{});
cast(Module, Func, Args, Kwargs) ->
    py_event_loop_pool:spawn_task(Module, Func, Args, pyport_compat:kwargs(Kwargs)).

-spec cast(py_event_loop:loop(), py_event_loop:py_name(), py_event_loop:py_name(), list(),
           kwargs()) -> ok | {error, py_event_loop:reason()}.
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
-spec eval(py_event_loop:loop(), py_event_loop:source()) -> py_event_loop:result();
          (py_event_loop:source(), locals()) -> py_event_loop:result().
eval({pyport_loop, _} = Loop, Code) ->
    eval(Loop, Code, #{});
eval(Code, Locals) ->
    eval(Code, Locals, ?DEFAULT_TIMEOUT).

-spec eval(py_event_loop:loop(), py_event_loop:source(), locals())
    -> py_event_loop:result();
          (py_event_loop:source(), locals(), timeout()) -> py_event_loop:result().
eval({pyport_loop, _} = Loop, Code, Locals) ->
    py_event_loop:eval(Loop, Code, eval_opts(Locals, ?DEFAULT_TIMEOUT));
eval(Code, Locals, Timeout) ->
    py_event_loop_pool:eval(Code, eval_opts(Locals, Timeout)).

%% Runs Python statements in the caller's loop's `__main__`.
-spec exec(py_event_loop:source()) -> ok | {error, py_event_loop:reason()}.
exec(Code) ->
    py_event_loop_pool:exec(Code, #{timeout => ?DEFAULT_TIMEOUT}).

-spec exec(py_event_loop:loop(), py_event_loop:source())
    -> ok | {error, py_event_loop:reason()}.
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

%% Internal.

eval_opts(Locals, Timeout) ->
    case pyport_compat:kwargs(Locals) of
        Map when is_map(Map), map_size(Map) =:= 0 -> #{timeout => Timeout};
        Map when is_map(Map) -> #{timeout => Timeout, locals => Map};
        _ -> error({badarg, {locals, Locals}})
    end.
