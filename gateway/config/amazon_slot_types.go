package config

// builtinSlotTypes are the built-in slot types of the Alexa Skills Kit, as
// listed in Amazon's Slot Type Reference:
// https://developer.amazon.com/en-US/docs/alexa/custom-skills/slot-type-reference.html
//
// Names are case-sensitive in the interaction model: AMAZON.NUMBER is a
// type, AMAZON.Number is not, and Amazon's model build rejects a slot of a
// type that does not exist. This list is data: when Amazon adds a type,
// add its name here.
var builtinSlotTypes = setOf(
	// Numbers, dates and times ("Numbers, Dates, and Times").
	"AMAZON.AlphaNumeric",
	"AMAZON.DATE",
	"AMAZON.DURATION",
	"AMAZON.FOUR_DIGIT_NUMBER",
	"AMAZON.NUMBER",
	"AMAZON.Ordinal",
	"AMAZON.PhoneNumber",
	"AMAZON.TIME",

	// Phrases ("Phrases").
	"AMAZON.SearchQuery",

	// Lists ("List Slot Types"), including the locale-specific lists on
	// Amazon's deprecation path, which still build.
	"AMAZON.Actor",
	"AMAZON.AdministrativeArea",
	"AMAZON.AggregateRating",
	"AMAZON.Airline",
	"AMAZON.Airport",
	"AMAZON.Anaphor",
	"AMAZON.Animal",
	"AMAZON.Artist",
	"AMAZON.AT_CITY",
	"AMAZON.AT_REGION",
	"AMAZON.Athlete",
	"AMAZON.Author",
	"AMAZON.Book",
	"AMAZON.BookSeries",
	"AMAZON.BroadcastChannel",
	"AMAZON.City",
	"AMAZON.CivicStructure",
	"AMAZON.Color",
	"AMAZON.Comic",
	"AMAZON.Corporation",
	"AMAZON.Country",
	"AMAZON.CreativeWorkType",
	"AMAZON.DayOfWeek",
	"AMAZON.DE_CITY",
	"AMAZON.DE_FIRST_NAME",
	"AMAZON.DE_REGION",
	"AMAZON.Dessert",
	"AMAZON.DeviceType",
	"AMAZON.Director",
	"AMAZON.Drink",
	"AMAZON.EducationalOrganization",
	"AMAZON.EUROPE_CITY",
	"AMAZON.EventType",
	"AMAZON.Festival",
	"AMAZON.FictionalCharacter",
	"AMAZON.FinancialService",
	"AMAZON.FirstName",
	"AMAZON.Food",
	"AMAZON.FoodEstablishment",
	"AMAZON.Game",
	"AMAZON.GB_CITY",
	"AMAZON.GB_FIRST_NAME",
	"AMAZON.GB_REGION",
	"AMAZON.Genre",
	"AMAZON.Landform",
	"AMAZON.LandmarksOrHistoricalBuildings",
	"AMAZON.Language",
	"AMAZON.LocalBusiness",
	"AMAZON.LocalBusinessType",
	"AMAZON.MedicalOrganization",
	"AMAZON.Month",
	"AMAZON.Movie",
	"AMAZON.MovieSeries",
	"AMAZON.MovieTheater",
	"AMAZON.MusicAlbum",
	"AMAZON.MusicCreativeWorkType",
	"AMAZON.MusicEvent",
	"AMAZON.MusicGroup",
	"AMAZON.Musician",
	"AMAZON.MusicPlaylist",
	"AMAZON.MusicRecording",
	"AMAZON.MusicVenue",
	"AMAZON.MusicVideo",
	"AMAZON.Organization",
	"AMAZON.Person",
	"AMAZON.PostalAddress",
	"AMAZON.Professional",
	"AMAZON.ProfessionalType",
	"AMAZON.RadioChannel",
	"AMAZON.Region",
	"AMAZON.RelativePosition",
	"AMAZON.Residence",
	"AMAZON.Room",
	"AMAZON.ScreeningEvent",
	"AMAZON.Service",
	"AMAZON.SocialMediaPlatform",
	"AMAZON.SoftwareApplication",
	"AMAZON.SoftwareGame",
	"AMAZON.Sport",
	"AMAZON.SportsEvent",
	"AMAZON.SportsTeam",
	"AMAZON.StreetAddress",
	"AMAZON.StreetName",
	"AMAZON.TelevisionChannel",
	"AMAZON.TVEpisode",
	"AMAZON.TVSeason",
	"AMAZON.TVSeries",
	"AMAZON.US_CITY",
	"AMAZON.US_FIRST_NAME",
	"AMAZON.US_STATE",
	"AMAZON.VideoGame",
	"AMAZON.VisualModeTrigger",
	"AMAZON.WeatherCondition",
	"AMAZON.WrittenCreativeWorkType",
)

func setOf(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
