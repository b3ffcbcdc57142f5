//! The database: a cluster's postgres service. Parameters are bound by the server
//! (`$1`, `$2`, ...), never spliced into the SQL.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Client, Error, service_query};

pub struct Db<'a> {
    client: &'a Client,
    service: Option<String>,
}

/// A statement's result: its columns and rows (values as JSON: numbers, booleans, JSON,
/// and strings for `int8`, `numeric` and the rest, as PostgreSQL's text gives them).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Rows {
    pub command: String,
    #[serde(rename = "rowCount")]
    pub row_count: Option<u64>,
    pub fields: Vec<Field>,
    pub rows: Vec<Vec<Value>>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    #[serde(rename = "dataTypeID")]
    pub type_oid: u32,
    #[serde(rename = "type")]
    pub type_name: String,
}

impl Rows {
    /// The value of column `name` in row `row`.
    pub fn get(&self, row: usize, name: &str) -> Option<&Value> {
        let i = self.fields.iter().position(|f| f.name == name)?;
        self.rows.get(row)?.get(i)
    }
}

impl<'a> Db<'a> {
    pub(crate) fn new(client: &'a Client, service: Option<&str>) -> Db<'a> {
        Db {
            client,
            service: service.map(str::to_string),
        }
    }

    /// Runs one statement; its rows.
    pub async fn query(&self, sql: &str, params: &[Value]) -> Result<Rows, Error> {
        let body = json!({ "query": sql, "params": params });
        let q = service_query(self.service.as_deref());
        self.client.call(Method::POST, "sql", &q, Some(&body)).await
    }

    /// Runs one statement; the rows it affected (or returned).
    pub async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, Error> {
        Ok(self.query(sql, params).await?.row_count.unwrap_or(0))
    }

    /// Runs the statements as one transaction: all of them or none.
    pub async fn transaction(&self, statements: &[(&str, Vec<Value>)]) -> Result<Vec<Rows>, Error> {
        #[derive(Deserialize)]
        struct Results {
            results: Vec<Rows>,
        }
        let queries: Vec<Value> = statements
            .iter()
            .map(|(sql, params)| json!({ "query": sql, "params": params }))
            .collect();
        let body = json!({ "queries": queries });
        let q = service_query(self.service.as_deref());
        let r: Results = self
            .client
            .call(Method::POST, "sql", &q, Some(&body))
            .await?;
        Ok(r.results)
    }
}
