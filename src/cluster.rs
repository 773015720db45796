//! A Ballista cluster from the `bhyt` binary: `bhyt cluster scheduler` and
//! `bhyt cluster executor`, the stock Apache Ballista scheduler and executor
//! (library crates, in-memory cluster state) so a site needs no second
//! install to run the heavy step ([`crate::aggregate`]) on several machines.
//! Executors must see the store's files at the same paths (a shared file
//! system); the client registers the snapshot's file list with each job.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;

#[derive(Debug, thiserror::Error)]
#[error("cluster {role}: {message}")]
pub struct ClusterError {
    role: &'static str,
    message: String,
}

fn runtime(role: &'static str) -> Result<tokio::runtime::Runtime, ClusterError> {
    // Deep plans recurse when (de)serialised: Ballista's own binaries run
    // on 32 MB stacks.
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 * 1024 * 1024)
        .build()
        .map_err(|e| ClusterError {
            role,
            message: e.to_string(),
        })
}

/// Runs a scheduler on `bind` until the process is stopped.
pub fn run_scheduler(bind: SocketAddr) -> Result<(), ClusterError> {
    let role = "scheduler";
    let err = |e: &dyn std::fmt::Display| ClusterError {
        role,
        message: e.to_string(),
    };
    runtime(role)?.block_on(async {
        let config = SchedulerConfig {
            bind_host: bind.ip().to_string(),
            external_host: bind.ip().to_string(),
            bind_port: bind.port(),
            ..Default::default()
        };
        let cluster = BallistaCluster::new_from_config(&config)
            .await
            .map_err(|e| err(&e))?;
        start_server(cluster, bind, Arc::new(config))
            .await
            .map_err(|e| err(&e))
    })
}

/// One executor's settings.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's gRPC address.
    pub scheduler: SocketAddr,
    /// Address this executor listens on; its Arrow Flight port is
    /// `bind`'s, its gRPC port `grpc_port`.
    pub bind: SocketAddr,
    pub grpc_port: u16,
    /// Shuffle files; default a temporary folder.
    pub work_dir: Option<PathBuf>,
    /// Tasks run at once; default the number of cores.
    pub concurrent_tasks: Option<usize>,
}

/// Runs an executor registered with the scheduler until the process is
/// stopped (or the scheduler asks it to stop).
pub fn run_executor(o: &ExecutorOptions) -> Result<(), ClusterError> {
    let role = "executor";
    let mut config = ExecutorProcessConfig {
        bind_host: o.bind.ip().to_string(),
        external_host: Some(o.bind.ip().to_string()),
        port: o.bind.port(),
        grpc_port: o.grpc_port,
        scheduler_host: o.scheduler.ip().to_string(),
        scheduler_port: o.scheduler.port(),
        // Started beside its scheduler, it may be up first: keep trying.
        scheduler_connect_timeout_seconds: 30,
        work_dir: o
            .work_dir
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned()),
        print_thread_info: false,
        ..Default::default()
    };
    if let Some(n) = o.concurrent_tasks {
        config.vcores = n.max(1);
    }
    runtime(role)?.block_on(async {
        start_executor_process(Arc::new(config))
            .await
            .map_err(|e| ClusterError {
                role,
                message: e.to_string(),
            })
    })
}
