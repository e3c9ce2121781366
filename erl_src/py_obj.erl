%% What Erlang does with a Python object it holds as a handle
%% (docs/handles.md). A handle comes from a task run with
%% `#{result => handle | auto}` or from Python's `erlang.handle(obj)`; it is
%% owned by the process that received it, and the object is dropped in
%% Python when that process exits, calls release/1, or the port restarts
%% (then every function here gives `{error, stale_handle}`). Only the owner
%% and the processes it shared the handle with (share/2) may use it:
%% others get `{error, not_owner}`.
%%
%% Each function but release/1 and transfer/2 is one task on the handle's
%% loop, with the handle as an argument: Python receives the object itself.
-module(py_obj).

-include("pyport_handle.hrl").

%% API.
-export([call/3]).
-export([call/4]).
-export([call/5]).
-export([getattr/2]).
-export([setattr/3]).
-export([value/1]).
-export([info/1]).
-export([release/1]).
-export([transfer/2]).
-export([share/2]).

-type obj() :: pyport_handle:handle().
%% As for py_event_loop:run/5: `result => handle` keeps the method's
%% result in Python too.
-type opts() :: #{timeout => timeout(), result => handle | auto | term}.
-type result() :: {ok, term()} | {error, py_event_loop:reason() | pyport_handle:error()}.
-export_type([obj/0, opts/0, result/0]).

%% The Python module whose functions the tasks below call.
-define(PY, 'erlang._handles').

%% API.

%% `Obj.Method(*Args, **Kwargs)`.
-spec call(obj(), py_event_loop:py_name(), list()) -> result().
call(Obj, Method, Args) ->
    call(Obj, Method, Args, #{}, #{}).

-spec call(obj(), py_event_loop:py_name(), list(), py_event_loop:kwargs()) -> result().
call(Obj, Method, Args, Kwargs) ->
    call(Obj, Method, Args, Kwargs, #{}).

-spec call(obj(), py_event_loop:py_name(), list(), py_event_loop:kwargs(), opts())
    -> result().
call(Obj, Method, Args, Kwargs, Opts) when is_list(Args), is_map(Kwargs), is_map(Opts) ->
    task(Obj, call, [Obj, name(Method) | Args], Opts#{kwargs => Kwargs});
call(Obj, Method, Args, Kwargs, Opts) ->
    error({badarg, {call, Obj, Method, Args, Kwargs, Opts}}).

%% `Obj.Name`, converted.
-spec getattr(obj(), py_event_loop:py_name()) -> result().
getattr(Obj, Name) ->
    task(Obj, get, [Obj, name(Name)], #{}).

%% `Obj.Name = Value`.
-spec setattr(obj(), py_event_loop:py_name(), term()) -> ok | {error, term()}.
setattr(Obj, Name, Value) ->
    case task(Obj, put, [Obj, name(Name), Value], #{}) of
        {ok, _} -> ok;
        {error, _} = Error -> Error
    end.

%% The object converted to a term now (its `__erlang__()` if it has one).
-spec value(obj()) -> result().
value(Obj) ->
    task(Obj, value, [Obj], #{}).

%% `#{type => Name, module => Module, repr => Repr}`, the repr truncated to
%% 200 characters.
-spec info(obj()) -> result().
info(Obj) ->
    task(Obj, info, [Obj], #{}).

%% Drops the object in Python (if nothing else there refers to it). Only
%% the owner may; a released handle is stale.
-spec release(obj()) -> ok | {error, stale_handle | not_owner}.
release(Obj) ->
    pyport_handle:release(checked(Obj), self()).

%% Lets Pid use the handle (as task arguments, and through this module's
%% functions but release/1 and transfer/2) until Pid exits or the handle
%% goes; only the owner may share, and it stays the owner.
-spec share(obj(), pid()) -> ok | {error, stale_handle | not_owner}.
share(Obj, Pid) when is_pid(Pid) ->
    pyport_handle:share(checked(Obj), self(), Pid);
share(_, Pid) ->
    error({badarg, {pid, Pid}}).

%% Makes Pid the owner; only the owner may.
-spec transfer(obj(), pid())
    -> ok | {error, stale_handle | not_owner | {handle_owner_limit, non_neg_integer()}}.
transfer(Obj, Pid) when is_pid(Pid) ->
    pyport_handle:transfer(checked(Obj), self(), Pid);
transfer(_, Pid) ->
    error({badarg, {pid, Pid}}).

%% Internal.

task(Obj, Func, Args, Opts) ->
    #py_obj{loop = Index} = checked(Obj),
    py_event_loop:run({pyport_loop, Index}, ?PY, Func, Args, Opts).

checked(#py_obj{loop = Index, incarnation = Inc, id = N} = Obj)
  when is_integer(Index), Index > 0, is_reference(Inc), is_integer(N), N > 0 ->
    Obj;
%% A handle of a named pool's loop (py_pool).
checked(#py_obj{loop = {Pool, Index}, incarnation = Inc, id = N} = Obj)
  when is_atom(Pool), is_integer(Index), Index > 0, is_reference(Inc), is_integer(N), N > 0 ->
    Obj;
checked(Other) ->
    error({badarg, {handle, Other}}).

name(Name) when is_atom(Name); is_binary(Name) -> Name;
name(Name) -> error({badarg, {name, Name}}).
