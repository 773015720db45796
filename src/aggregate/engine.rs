//! Running `heavy.sql` on DataFusion, in-process or through a Ballista
//! scheduler. The store's tables are registered as Parquet listing tables
//! over exactly the data files of the snapshot (from the Delta log), so the
//! engine never reads a replaced or uncommitted file; partition columns are
//! not needed (year and month come from the discharge date in the files).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use ballista::prelude::SessionContextExt;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::{queries, AggregateError, Engine, Summary};
use crate::store::{write_atomic, Store, LINES, SUPERSEDED, VISITS};

fn engine_err(engine: &Engine) -> impl Fn(String) -> AggregateError + '_ {
    move |message| AggregateError::Engine {
        engine: engine.name(),
        message,
    }
}

async fn register(
    ctx: &SessionContext,
    name: &str,
    files: &[PathBuf],
) -> datafusion::error::Result<()> {
    // As file:// URLs: a local path given as text is read as a glob
    // pattern, and a store under `/data/[2024]` would match other files.
    let urls = files
        .iter()
        .map(|p| {
            let abs = std::path::absolute(p)?;
            let url = url::Url::from_file_path(&abs).map_err(|_| {
                datafusion::error::DataFusionError::Plan(format!(
                    "{}: not an absolute path",
                    p.display()
                ))
            })?;
            ListingTableUrl::parse(url.as_str())
        })
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .infer_schema(&ctx.state())
        .await?;
    ctx.register_table(name, Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

async fn context(engine: &Engine) -> datafusion::error::Result<SessionContext> {
    match engine {
        Engine::DataFusion => Ok(SessionContext::new_with_config(
            SessionConfig::new().with_target_partitions(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
        )),
        Engine::Ballista { scheduler } => SessionContext::remote(scheduler).await,
    }
}

fn to_parquet(schema: SchemaRef, batches: &[RecordBatch], path: &Path) -> Result<(), String> {
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, None).map_err(|e| e.to_string())?;
    for b in batches {
        w.write(b).map_err(|e| e.to_string())?;
    }
    w.close().map_err(|e| e.to_string())?;
    write_atomic(path, &buf).map_err(|e| e.to_string())
}

pub(super) fn run(
    store: &Store,
    engine: &Engine,
    shrinkage_visits: f64,
    out: &Path,
) -> Result<Summary, AggregateError> {
    let t = Instant::now();
    let visits = store.data_files(VISITS)?;
    let lines = store.data_files(LINES)?;
    let superseded = store.data_files(SUPERSEDED)?;
    if visits.is_empty() {
        return Err(AggregateError::Empty(VISITS));
    }
    if lines.is_empty() {
        return Err(AggregateError::Empty(LINES));
    }
    let facilities = store.facilities_path();
    let qs = queries(shrinkage_visits, !superseded.is_empty())?;
    let err = engine_err(engine);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| err(e.to_string()))?;
    std::fs::create_dir_all(out).map_err(|e| err(format!("{}: {e}", out.display())))?;
    let results = rt.block_on(async {
        let ctx = context(engine).await?;
        register(&ctx, "visits", &visits).await?;
        register(&ctx, "lines", &lines).await?;
        register(&ctx, "facilities", std::slice::from_ref(&facilities)).await?;
        if !superseded.is_empty() {
            register(&ctx, "superseded", &superseded).await?;
        }
        let mut results: Vec<(String, SchemaRef, Vec<RecordBatch>)> = Vec::new();
        for (name, sql) in &qs {
            let t = Instant::now();
            let df = ctx.sql(sql).await?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await?;
            tracing::info!(
                "{name} on {}: {:.2} s",
                engine.name(),
                t.elapsed().as_secs_f64()
            );
            results.push((name.clone(), schema, batches));
        }
        datafusion::error::Result::Ok(results)
    });
    let results = results.map_err(|e: datafusion::error::DataFusionError| err(e.to_string()))?;
    let mut rows = Vec::new();
    for (name, schema, batches) in results {
        let path = out.join(format!("{name}.parquet"));
        to_parquet(schema, &batches, &path).map_err(|m| err(format!("{}: {m}", path.display())))?;
        rows.push((name, batches.iter().map(|b| b.num_rows()).sum()));
    }
    Ok(Summary {
        rows,
        seconds: t.elapsed().as_secs_f64(),
    })
}
