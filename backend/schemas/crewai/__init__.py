from backend.schemas.crewai.project import (
    CrewaiImport,
    CrewaiImportResult,
    CrewaiProject,
    CrewaiWarning,
)

__all__ = ["CrewaiImport", "CrewaiImportResult", "CrewaiProject", "CrewaiWarning"]
